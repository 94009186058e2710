"""Training: the trainer, its loop, callbacks, state, distribution, run directory and the association stage."""
