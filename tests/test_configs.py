"""The flagfiles in configs/ parse with the trainer's flags and hold the paper's settings (IV-A); docs/reproduce.md's
commands parse too."""

import dataclasses
import shlex
from pathlib import Path

import pytest
from absl import flags

from acan_tf.config import SCHEMES, Config
from acan_tf.data import DATASET_NAMES
from acan_tf.flags import config_from_flags, define_flags
from acan_tf.model.backbones import BACKBONES

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.cfg"))
REAL_DATASETS = ("market1501", "dukemtmcreid", "msmt17", "mars", "duke_si_tracklet")
PAPER_CONFIGS = [path for path in CONFIGS if path.stem in REAL_DATASETS]
ASSOCIATION_CONFIGS = [path for path in CONFIGS if path.stem.endswith("_association")]
VIDEO_DATASETS = ("mars", "duke_si_tracklet")
TRAIN_COMMAND = "python -m acan_tf.train "

# Section IV-A: "all experiments on all datasets utilize the same experimental settings".
PAPER = {
    "image_height": 256,
    "image_width": 128,
    "num_identities": 32,
    "num_instances": 4,
    "margin": 0.3,
    "adv_weight": 1.0,
    "disc_width": 128,
    "camera_batch_size": 64,
    "backbone": "resnet50",
    "backbone_weights": "imagenet",
    "lr_pretrained": 0.1,
    "lr_new": 0.01,
    "epochs": 300,
    "lr_decay_epochs": (100, 200),
    "lr_decay_factor": 0.1,
}


def parse(*argv: str) -> Config:
    """The Config the trainer would build from `argv` (its flags, with the same enumerations)."""
    flag_values = flags.FlagValues()
    define_flags({"dataset": DATASET_NAMES, "backbone": tuple(BACKBONES)}, flag_values)
    flag_values(["train", *argv])
    return config_from_flags(flag_values)


def test_there_is_one_flagfile_per_real_dataset_with_and_without_association_and_the_synthetic_benchmarks():
    expected = [*REAL_DATASETS, *(f"{name}_association" for name in REAL_DATASETS), "synthetic",
                "synthetic_pretrained", "synthetic_realistic", "synthetic_tiny", "tiny"]
    assert sorted(path.stem for path in CONFIGS) == sorted(expected)


@pytest.mark.parametrize("path", ASSOCIATION_CONFIGS, ids=lambda path: path.name)
def test_association_flagfile_is_the_papers_plus_the_stage(path, monkeypatch):
    monkeypatch.chdir(REPO)  # the nested flagfile's path is relative to the repository, as the docs run it
    dataset = path.stem[: -len("_association")]
    config, paper = parse(f"--flagfile={path}"), parse(f"--flagfile={REPO / 'configs' / f'{dataset}.cfg'}")
    assert config.cross_camera == "association" and config.output_dir == f"runs/{dataset}-oce-association"
    assert 1 <= config.association_first_epoch <= config.epochs
    stage = {"cross_camera", "output_dir"} | {name for name in config.to_json() if name.startswith("association_")}
    assert {k: v for k, v in config.to_json().items() if k not in stage} == \
        {k: v for k, v in paper.to_json().items() if k not in stage}


def test_the_synthetic_flagfile_is_the_run_without_flags():
    assert parse(f"--flagfile={REPO / 'configs' / 'synthetic.cfg'}") == Config()


def test_the_pretrained_synthetic_flagfile_is_the_run_without_flags_in_its_own_folder(monkeypatch):
    monkeypatch.chdir(REPO)
    config = parse(f"--flagfile={REPO / 'configs' / 'synthetic_pretrained.cfg'}")
    assert (config.backbone, config.backbone_weights, config.image_height) == ("efficientnet_lite0", "imagenet", 128)
    assert dataclasses.replace(config, output_dir=Config().output_dir) == Config()


def test_the_realistic_synthetic_flagfile_is_the_run_without_flags_on_the_realistic_preset_in_its_own_folders(
        monkeypatch):
    monkeypatch.chdir(REPO)
    config = parse(f"--flagfile={REPO / 'configs' / 'synthetic_realistic.cfg'}")
    assert (config.synthetic_preset, config.data_root) == ("realistic", "data/synthetic_realistic")
    assert config.output_dir != Config().output_dir
    own = {"synthetic_preset": Config().synthetic_preset, "data_root": Config().data_root,
           "output_dir": Config().output_dir}
    assert dataclasses.replace(config, **own) == Config()


def test_the_tiny_synthetic_flagfile_is_that_run_with_the_small_cnn_from_scratch(monkeypatch):
    monkeypatch.chdir(REPO)
    config = parse(f"--flagfile={REPO / 'configs' / 'synthetic_tiny.cfg'}")
    model = parse(f"--flagfile={REPO / 'configs' / 'tiny.cfg'}")
    assert (config.backbone, config.backbone_weights, config.lr_pretrained, config.image_width, config.epochs) == \
        ("tiny", "none", 0.01, 32, 12)
    model_fields = {"backbone", "backbone_weights", "image_height", "image_width", "pad", "lr_pretrained", "lr_new"}
    changed = model_fields | {"epochs", "lr_decay_epochs", "output_dir"}
    assert {k: v for k, v in config.to_json().items() if k not in changed} == \
        {k: v for k, v in Config().to_json().items() if k not in changed}
    # tiny.cfg is the model part only, so that the experiments keep their own schedule with it.
    default = Config().to_json()
    assert {k for k, v in model.to_json().items() if v != default[k]} == model_fields


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda path: path.name)
def test_flagfile_holds_the_papers_settings(path):
    config = parse(f"--flagfile={path}")
    assert {name: getattr(config, name) for name in PAPER} == PAPER
    assert config.dataset == path.stem
    assert config.scheme == "oce" and config.cross_camera == "none", "ACAN as published"
    assert config.output_dir == f"runs/{path.stem}-oce"
    assert config.data_root.startswith("data/")
    assert config.eval_every >= 1
    # Unset flags keep the paper's behaviour: cameras with fewer than P identities dropped, steps from the data.
    assert config.min_ids == 32 and config.steps_per_epoch == 0
    if path.stem in VIDEO_DATASETS:
        # Set explicitly, so that a change of the default cannot change T behind the flagfile's back.
        assert "--frames_per_tracklet=4" in path.read_text().splitlines()
        assert config.frames_per_tracklet == 4


def test_flagfile_sets_each_flag_once():
    for path in CONFIGS:
        names = [line.split("=")[0] for line in path.read_text().splitlines()
                 if line.startswith("--") and not line.startswith("--flagfile=")]  # nesting two files is fine
        assert len(names) == len(set(names)), path.name


def test_flags_after_the_flagfile_override_it():
    config = parse(f"--flagfile={REPO / 'configs' / 'mars.cfg'}", "--scheme=grl", "--data_root=/datasets",
                   "--output_dir=runs/mars-grl")
    assert (config.scheme, config.data_root, config.output_dir) == ("grl", "/datasets", "runs/mars-grl")
    assert config.frames_per_tracklet == 4


def reproduce_commands() -> list[str]:
    """Every trainer command line of docs/reproduce.md, flags only."""
    lines = (REPO / "docs" / "reproduce.md").read_text().splitlines()
    return [line.strip()[len(TRAIN_COMMAND):] for line in lines if line.strip().startswith(TRAIN_COMMAND)]


def test_reproduce_md_runs_every_dataset_with_every_scheme_into_its_own_folder(monkeypatch):
    monkeypatch.chdir(REPO)  # the association flagfiles name the paper's by a path relative to the repository
    configs = []
    for command in reproduce_commands():
        # The flagfile paths are relative to the repository, where the docs tell users to run them.
        args = [arg.replace("--flagfile=", f"--flagfile={REPO}/", 1) for arg in shlex.split(command)]
        configs.append(parse(*args))
    stage = [c for c in configs if c.cross_camera == "association"]
    assert sorted(c.dataset for c in stage) == sorted(REAL_DATASETS), "one association run per dataset"
    configs = [c for c in configs if c.cross_camera == "none"]
    assert sorted((c.dataset, c.scheme) for c in configs) == sorted(
        (dataset, scheme) for dataset in REAL_DATASETS for scheme in SCHEMES
    )
    assert all(c.output_dir == f"runs/{c.dataset}-{c.scheme}" for c in configs)
    assert all({name: getattr(c, name) for name in PAPER} == PAPER for c in configs)
