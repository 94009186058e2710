"""The run configuration: one frozen dataclass, validated once.

Each field carries its help text and, where it has a fixed set of values, its choices; `acan_tf.flags`
turns the fields into absl flags, so a setting is declared in exactly one place.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from acan_tf.errors import UserError

# The adversarial schemes of the paper (Tables V, VI) and the warm-ups of λ; acan_tf.model.acan implements them.
SCHEMES = ("none", "grl", "oce", "ace")
WARMUPS = ("none", "linear", "dann")
# Cross-camera identities (beyond the paper): none (ACAN as published), association (pseudo-identities linked from
# features and camera-local ids; acan_tf.training.association), supervised (the true cross-camera identities: the
# ceiling that intra-camera methods are measured against; it reads cross-camera labels).
CROSS_CAMERA = ("none", "association", "supervised")
# Similarities of the association's proxies (acan_tf.training.association): cosine of their features, or from the
# k-reciprocal Jaccard distance between their items (CCAFL).
DISTANCES = ("cosine", "jaccard")
# Looks of the generated benchmark (acan_tf.data.synthetic.presets): default (the paper's tables) and realistic
# (calibrated to predict real two-camera data, docs/results.md).
SYNTHETIC_PRESETS = ("default", "realistic")
# The per-camera identity loss of the intra-camera recipe (issue 18; acan_tf.model.identity_heads): none (ACAN as
# published), classifier (one softmax classifier per camera, MATE) or memory (a memory of class centres per camera,
# Precise-ICS).
INTRA_ID_LOSSES = ("none", "classifier", "memory")
OPTIMIZERS = ("sgd", "adam")


class ConfigError(UserError, ValueError):
    """A configuration value is out of range; the message names the flag."""


def _field(default: Any, help: str, choices: tuple[str, ...] | None = None, runtime: bool = False) -> Any:
    """A Config field; `runtime` marks a setting of how the run is run rather than of what it computes."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "runtime": runtime})


@dataclasses.dataclass(frozen=True)
class Config:
    """Every setting of a training run: what it computes, and (fields marked `runtime`) how it is run.

    The runtime settings (output folder, overwrite/resume, analyses, checkpoint cadence, evaluation batch,
    strategy, XLA) do not change the numbers a run produces: `--resume` may change them, and the experiments
    reuse a finished run whatever they were (`computed()` is the one rule for both). The defaults are a CPU-sized
    run on the synthetic benchmark (`python -m acan_tf.train` with no flags);
    the paper's settings (IV-A) for each real dataset are in configs/<dataset>.cfg.
    """

    # Data.
    dataset: str = _field("synthetic", "Dataset layout to read (see acan_tf.data.DATASET_NAMES).")
    data_root: str = _field("data/synthetic", "Dataset folder or its parent; the synthetic benchmark is generated "
                                              "here if absent.")
    synthetic_camera_shift: float = _field(1.0, "Strength of the cameras' shifts when the synthetic benchmark is "
                                                "generated (0-1).")
    synthetic_preset: str = _field("default", "The generated benchmark's people and cameras: default (the paper's "
                                              "tables) or realistic (predicts real two-camera data; give it its own "
                                              "--data_root, e.g. data/synthetic_realistic).", SYNTHETIC_PRESETS)
    image_height: int = _field(128, "Input height H (paper: 256; the dataset flagfiles set it).")
    image_width: int = _field(64, "Input width W (paper: 128).")
    frames_per_tracklet: int = _field(4, "Frames T sampled per tracklet in training (video datasets).")
    min_ids_per_camera: int = _field(0, "Cameras with fewer training identities are dropped; 0 means P (the paper).")
    # Batches (Eq. 11-12 and IV-A).
    num_identities: int = _field(16, "P: identities per triplet batch, all from one camera (paper: 32).")
    num_instances: int = _field(4, "K: images (or tracklets) per identity in a triplet batch.")
    camera_batch_size: int = _field(64, "B: the camera-balanced batch holds floor(B/C) images of every camera.")
    camera_sampling: str = _field("quota", "quota: exact floor(B/C) per camera; rejection: balanced on "
                                           "average.", ("quota", "rejection"))
    # Augmentation.
    flip: bool = _field(True, "Random horizontal flip.")
    pad: int = _field(8, "Zero padding before the random crop, in pixels (0: no crop); 10 at 256x128.")
    random_erasing: float = _field(0.5, "Probability of random erasing (0: off).")
    # Model.
    backbone: str = _field("efficientnet_lite0", "Feature extractor F (resnet50 is the paper's; tiny, with "
                                                 "--backbone_weights=none, trains from scratch).")
    backbone_weights: str = _field("imagenet", "none (random initialisation), imagenet (installed for "
                                               "efficientnet_lite0, from the Keras cache for the others; no download) "
                                               "or a weights file path.")
    disc_width: int = _field(128, "Width of D's fully connected layer (paper: 128).")
    # Objective (Eq. 13).
    scheme: str = _field("oce", "Adversarial scheme: none (only L_Triplet), grl, oce (the paper's) or ace.", SCHEMES)
    adv_weight: float = _field(1.0, "lambda in Eq. 13 (paper: 1).")
    adv_warmup: str = _field("none", "Warm-up of lambda: none (paper), linear over --adv_warmup_epochs, or "
                                     "dann.", WARMUPS)
    adv_warmup_epochs: int = _field(0, "Epochs of the linear lambda warm-up.")
    margin: float = _field(0.3, "Triplet margin m (paper: 0.3).")
    # Cross-camera association (beyond the paper; acan_tf.training.association).
    cross_camera: str = _field(
        "association",
        "Cross-camera identities: none (ACAN as published), association (pseudo-identities linked across cameras from "
        "F's features and camera-local ids only) or supervised (the TRUE cross-camera ids: an upper bound that uses "
        "cross-camera labels).",
        CROSS_CAMERA,
    )
    association_first_epoch: int = _field(2, "First epoch (1-based) trained with pseudo-identities; the association "
                                             "runs before it.")
    association_every: int = _field(1, "Associate again every N epochs after the first round.")
    association_threshold: float = _field(0.0, "Similarity a link needs, in [-1, 1]: the cosine of per-camera centred "
                                               "proxies (with --association_distance=jaccard, 1 - 2 x the Jaccard "
                                               "distance).")
    association_centering: bool = _field(True, "Subtract each camera's mean proxy before linking (removes camera "
                                               "bias).")
    association_weight: float = _field(1.0, "Weight of the cross-camera triplet loss over pseudo-identities.")
    association_distance: str = _field(
        "cosine",
        "Similarity of two camera-local identities in a round: cosine of their mean features, or jaccard: 1 - 2 x the "
        "k-reciprocal Jaccard distance between them (CCAFL's distance; on the cosine's [-1, 1] scale, so CCAFL's "
        "distance 0.4 is --association_threshold=0.2; at most 15,000 camera-local identities).",
        DISTANCES,
    )
    association_k1: int = _field(20, "k1 of the k-reciprocal sets of identities with --association_distance=jaccard "
                                     "(CCAFL's 30 counts images).")
    association_k2: int = _field(6, "k2, the query expansion, with --association_distance=jaccard (CCAFL: 6).")
    association_budget: float = _field(
        0.0, "Link budget (Precise-ICS): 0 keeps the mutual-nearest-neighbour links; F > 0 links instead the most "
        "similar cross-camera pairs first, each identity at most one partner per other camera, up to F x the "
        "camera-local identities in the last round, growing linearly from F/R in the first of R rounds (at most "
        "10,000 identities).")
    association_teacher_momentum: float = _field(
        0.0, "Momentum m of a teacher F (CMT): an exponential moving average of F's weights, updated every step "
        "(teacher = m teacher + (1 - m) F), whose features the association rounds use; 0: rounds use F.")
    association_confidence: bool = _field(
        False, "Weight each anchor of the cross-camera triplet loss by the confidence of its identity's link: how far "
        "its similarity stands above the partner camera's next most similar identity.")
    # Camera-aware normalisation in training (issue 18; off: ACAN as published).
    camera_centering: bool = _field(False, "Centre the features that D, L_MCAL and the cross-camera triplet loss see "
                                           "on each camera's mean in the step's camera-balanced batch, as test-time "
                                           "camera normalisation centres them (the intra-camera triplet loss is "
                                           "unchanged by a shift).")
    # The intra-camera recipe of the methods after ACAN (issue 18; off: ACAN as published).
    intra_id_loss: str = _field("none", "Per-camera identity loss on the triplet batch's camera-local ids: none, "
                                        "classifier (a softmax classifier per camera, MATE) or memory (a memory of "
                                        "class centres per camera, Precise-ICS).", INTRA_ID_LOSSES)
    intra_id_weight: float = _field(1.0, "Weight of the per-camera identity loss.")
    memory_momentum: float = _field(0.5, "--intra_id_loss=memory: a centre keeps this share of itself at each update "
                                         "(Precise-ICS: 0.5).")
    memory_temperature: float = _field(0.05, "--intra_id_loss=memory: temperature of the softmax over the camera's "
                                             "centres (CCAFL: 0.05).")
    bn_neck: bool = _field(False, "BN-neck (Bag of Tricks): batch normalisation without shift after pooling; the "
                                  "triplet and adversarial losses see the features before it, the identity loss and "
                                  "the exported embedding those after it.")
    # Optimisation (SGD with momentum or Adam, step decay).
    optimizer: str = _field("sgd", "Optimizer of F and D: sgd (with --momentum; the paper's) or adam.", OPTIMIZERS)
    warmup_steps: int = _field(0, "Linear warm-up of F's learning rate over the first N steps (0: none; instead of "
                                  "--lr_warmup_epochs).")
    epochs: int = _field(3, "Training epochs (paper: 300).")
    steps_per_epoch: int = _field(100, "Steps per epoch; 0: training items / (P*K).")
    lr_pretrained: float = _field(0.001, "Learning rate of F, the backbone (paper, ImageNet-pretrained ResNet-50: "
                                         "0.1).")
    lr_new: float = _field(0.001, "Learning rate of the new layers, D (paper: 0.01).")
    momentum: float = _field(0.9, "SGD momentum (--optimizer=sgd).")
    weight_decay: float = _field(5e-4, "Decoupled weight decay of both optimizers.")
    lr_decay_epochs: tuple[int, ...] = _field((2,), "Epochs at which learning rates are multiplied by "
                                                    "--lr_decay_factor (paper: 100,200).")
    lr_decay_factor: float = _field(0.1, "Learning-rate decay factor (paper: 0.1).")
    lr_warmup_epochs: int = _field(0, "Linear warm-up of both learning rates over the first N epochs (paper: none; "
                                      "fine-tuning a pretrained backbone may need it).")
    # Evaluation and output.
    validation_identities: int = _field(
        0, "Hold out N training identities and evaluate on them instead of the test split (to choose settings "
        "without the test split); 0: evaluate on the test split.")
    eval_every: int = _field(3, "Evaluate every N epochs (0: only at the end).")
    eval_batch_size: int = _field(128, "Images per batch when extracting features.", runtime=True)
    normalize_features: bool = _field(True, "L2-normalise features before Euclidean ranking (as the exported model "
                                            "does).")
    analyses: bool = _field(True, "After training, write the paper's analysis figures into the run directory (plots/, "
                                  "TensorBoard images): D's camera confusion, t-SNE, CMC, ranked list, convergence.",
                            runtime=True)
    output_dir: str = _field("runs/acan", "Run directory: checkpoints, TensorBoard logs, report.json.", runtime=True)
    overwrite: bool = _field(False, "Replace an existing run in --output_dir.", runtime=True)
    resume: bool = _field(False, "Continue the run saved in --output_dir from its last saved state (start it if there "
                                 "is none).", runtime=True)
    checkpoint_every_steps: int = _field(0, "Save the training state for --resume every N steps and after every "
                                            "epoch; 0: every half epoch.", runtime=True)
    collapse_guard: str = _field(
        "stop",
        "When the embedding collapses (every image embedded alike, the triplet loss stuck at the margin): stop the run "
        "keeping the last good state, or only warn.",
        ("stop", "warn"), runtime=True,
    )
    seed: int = _field(0, "Seed of sampling, augmentation and initialisation.")
    deterministic: bool = _field(False, "TensorFlow op determinism: a rerun, or a resumed run, gives the same weights "
                                        "bit for bit.")
    # Hardware.
    strategy: str = _field(
        "auto",
        "auto: mirrored with more than one GPU, else one device; mirrored: MirroredStrategy over the local GPUs (or "
        "logical CPUs); multi_worker: MultiWorkerMirroredStrategy configured by TF_CONFIG; one_device: the first GPU "
        "or the CPU.",
        ("auto", "one_device", "mirrored", "multi_worker"),
        runtime=True,
    )
    mixed_precision: str = _field("none", "Compute in bfloat16 or float16 (with loss scaling), weights and losses in "
                                          "float32; for GPUs.", ("none", "bfloat16", "float16"))
    jit_compile: str = _field("auto", "XLA-compile the training step: auto (on when a GPU is visible), on, "
                                      "off.", ("auto", "on", "off"), runtime=True)

    def __post_init__(self) -> None:
        _check(self)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "Config":
        """The config saved by `to_json` (missing keys: the default, but no association stage); unknown keys are an
        error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}")
        if "lr_decay_epochs" in values:
            values = {**values, "lr_decay_epochs": tuple(values["lr_decay_epochs"])}
        # A run saved before the association stage existed ran without it, whatever today's default is.
        return cls(**{"cross_camera": "none", **values})

    def computed(self) -> dict[str, Any]:
        """The settings that decide what the run computes (every field not marked runtime), JSON-ready."""
        return {name: value for name, value in self.to_json().items() if name not in RUNTIME_FIELDS}

    @property
    def min_ids(self) -> int:
        """The identities a camera needs to take part in training."""
        return self.min_ids_per_camera or self.num_identities


RUNTIME_FIELDS = tuple(f.name for f in dataclasses.fields(Config) if f.metadata["runtime"])


def _check(config: Config) -> None:
    def require(condition: bool, flag: str, expected: str) -> None:
        if not condition:
            raise ConfigError(f"--{flag}={getattr(config, flag)!r}: expected {expected}")

    for f in dataclasses.fields(config):
        choices = f.metadata["choices"]
        if choices:
            require(getattr(config, f.name) in choices, f.name, f"one of {', '.join(choices)}")
    for name in ("image_height", "image_width"):
        require(getattr(config, name) >= 16, name, "an integer >= 16")
    require(config.frames_per_tracklet >= 1, "frames_per_tracklet", "an integer >= 1")
    require(config.min_ids_per_camera >= 0, "min_ids_per_camera", "an integer >= 0 (0: use --num_identities)")
    require(config.num_identities >= 2, "num_identities", "an integer >= 2 (a triplet needs a negative identity)")
    require(config.num_instances >= 2, "num_instances", "an integer >= 2 (a triplet needs a positive)")
    require(config.camera_batch_size >= 1, "camera_batch_size", "an integer >= 1")
    require(config.pad >= 0, "pad", "an integer >= 0")
    require(0.0 <= config.random_erasing <= 1.0, "random_erasing", "a probability in [0, 1]")
    require(config.disc_width >= 1, "disc_width", "an integer >= 1")
    require(config.adv_weight >= 0.0, "adv_weight", "a number >= 0")
    require(config.adv_warmup_epochs >= 0, "adv_warmup_epochs", "an integer >= 0")
    require(config.adv_warmup != "linear" or config.adv_warmup_epochs >= 1, "adv_warmup_epochs",
            "an integer >= 1 with --adv_warmup=linear")
    require(config.margin > 0.0, "margin", "a number > 0")
    require(-1.0 <= config.association_threshold <= 1.0, "association_threshold", "a cosine similarity in [-1, 1]")
    require(config.association_first_epoch >= 1, "association_first_epoch", "an epoch number >= 1")
    require(config.cross_camera != "association" or config.association_first_epoch <= config.epochs,
            "association_first_epoch", f"an epoch in 1..--epochs={config.epochs} with --cross_camera=association")
    require(config.association_every >= 1, "association_every", "an integer >= 1")
    require(config.association_weight >= 0.0, "association_weight", "a number >= 0")
    require(config.association_k1 >= 1, "association_k1", "an integer >= 1")
    require(config.association_k2 >= 1, "association_k2", "an integer >= 1")
    require(config.association_budget >= 0.0, "association_budget", "a number >= 0 (0: mutual nearest neighbours)")
    require(0.0 <= config.association_teacher_momentum < 1.0, "association_teacher_momentum",
            "a number in [0, 1) (0: no teacher)")
    require(config.intra_id_weight >= 0.0, "intra_id_weight", "a number >= 0")
    require(0.0 <= config.memory_momentum < 1.0, "memory_momentum", "a number in [0, 1)")
    require(config.memory_temperature > 0.0, "memory_temperature", "a number > 0")
    require(config.epochs >= 1, "epochs", "an integer >= 1")
    require(config.steps_per_epoch >= 0, "steps_per_epoch", "an integer >= 0 (0: derived from the dataset)")
    require(config.lr_pretrained > 0.0, "lr_pretrained", "a number > 0")
    require(config.lr_new > 0.0, "lr_new", "a number > 0")
    require(0.0 <= config.momentum < 1.0, "momentum", "a number in [0, 1)")
    require(config.weight_decay >= 0.0, "weight_decay", "a number >= 0")
    decay = list(config.lr_decay_epochs)
    require(decay == sorted(set(decay)) and all(e >= 1 for e in decay), "lr_decay_epochs",
            "increasing positive epoch numbers, e.g. 100,200")
    require(0.0 < config.lr_decay_factor <= 1.0, "lr_decay_factor", "a number in (0, 1]")
    require(config.lr_warmup_epochs >= 0, "lr_warmup_epochs", "an integer >= 0 (0: no warm-up)")
    require(config.warmup_steps >= 0, "warmup_steps", "an integer >= 0 (0: no warm-up)")
    require(not (config.warmup_steps and config.lr_warmup_epochs), "warmup_steps",
            f"0 with --lr_warmup_epochs={config.lr_warmup_epochs} (both warm up F's learning rate; choose one)")
    require(config.eval_every >= 0, "eval_every", "an integer >= 0 (0: only at the end)")
    require(config.validation_identities >= 0, "validation_identities", "an integer >= 0 (0: the test split)")
    require(0.0 <= config.synthetic_camera_shift <= 1.0, "synthetic_camera_shift", "a number in [0, 1]")
    require(config.eval_batch_size >= 1, "eval_batch_size", "an integer >= 1")
    require(bool(config.output_dir), "output_dir", "a directory path")
    require(not (config.resume and config.overwrite), "resume", "False with --overwrite (--resume continues the run, "
                                                                "--overwrite replaces it)")
    require(config.checkpoint_every_steps >= 0, "checkpoint_every_steps", "an integer >= 0 (0: every half epoch)")
