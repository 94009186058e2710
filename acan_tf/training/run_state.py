"""RunState: what a run has done so far, the one object the loop advances and every callback reads.

The loop sets `epoch` before an epoch's first callback and `step` before each step's callbacks, so no callback
counts steps itself; the callbacks record evaluations and epoch logs into it, the collapse guard says whether a
state may be saved, and the training state saved for --resume is assembled from it (`progress`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from acan_tf.training.cross_camera import CrossCameraState
from acan_tf.training.state import Progress


@dataclasses.dataclass
class RunState:
    """The run's progress: global step (steps completed), 0-based epoch in progress, one log dict per completed
    epoch, the evaluations and best mAP so far, the cross-camera stage's state, the step of the last saved training
    state, whether saving is held (the collapse guard suspects a collapse), and the last evaluation's features
    (kept in memory for the figures, never saved)."""

    steps_per_epoch: int
    step: int = 0
    epoch: int = 0
    epoch_logs: list[dict[str, float]] = dataclasses.field(default_factory=list)
    evaluations: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best_map: float = -1.0
    cross_camera: CrossCameraState = dataclasses.field(default_factory=lambda: CrossCameraState(None))
    saved_step: int = 0
    hold_saves: bool = False
    final_features: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def resumed(cls, steps_per_epoch: int, progress: Progress | None) -> "RunState":
        """The state of a new run, or of one resumed from its saved `progress`."""
        if progress is None:
            return cls(steps_per_epoch)
        return cls(steps_per_epoch, step=progress.step, epoch=progress.step // steps_per_epoch,
                   epoch_logs=list(progress.epoch_logs), evaluations=list(progress.evaluations),
                   best_map=progress.best_map, cross_camera=CrossCameraState.from_json(progress.cross_camera),
                   saved_step=progress.step)

    @property
    def at_epoch_end(self) -> bool:
        """Whether the last step completed is the last of its epoch."""
        return self.step % self.steps_per_epoch == 0

    def progress(self) -> Progress:
        """What the training state saved now carries over to a resumed run."""
        return Progress(self.step, self.epoch_logs, self.evaluations, self.best_map, self.cross_camera.to_json())
