"""Bad input to the trainer, case by case: each gets a clear error (or is skipped, as documented), and nothing the
user had is lost (no output folder appears for a run that cannot start; saved checkpoints stay loadable)."""

import errno
import io
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest
import scipy.io
from absl import flags
from PIL import Image

from acan_tf.config import ConfigError
from acan_tf.data import DATASET_NAMES, DatasetError, load_dataset
from acan_tf.data.pipeline import TrainingBatches
from acan_tf.data.sampling import SamplingError, training_set
from acan_tf.flags import config_from_flags, define_flags
from acan_tf.model.backbones import BACKBONES
from acan_tf.model.builder import build_acan
from acan_tf.run_dir import RunDir
from acan_tf.training import state as checkpointing
from acan_tf.training.state import CheckpointError, read_progress
from acan_tf.training.trainer import RunError, run
from tests.fixture_trees import write_mars_tree, write_msmt17_tree
from tests.tiny_runs import REPO, h5_arrays, make_tree, subprocess_env, tiny_config, train_command

pytestmark = pytest.mark.slow  # bad-input runs, subprocesses and filled disks: the full suite only

# One epoch of 4 steps, the state saved after every step.
SHORT = dict(epochs=1, steps_per_epoch=4, checkpoint_every_steps=1, lr_decay_epochs=())


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return make_tree(str(tmp_path_factory.mktemp("battery") / "tree"))


@pytest.fixture
def tree(pristine, tmp_path):
    """A copy of the tiny tree that a test may damage."""
    return shutil.copytree(pristine, tmp_path / "tree")


def train_image_read_first_at(tree, step: int, config) -> Path:
    """A training image that step `step` reads and no earlier step does (steps are a function of seed and step)."""
    train = training_set(load_dataset("synthetic", str(tree)).train, config.min_ids)
    batches = TrainingBatches(train.records, train.local_ids, train.classes, config.num_identities,
                              config.num_instances, config.camera_batch_size, 1, config.seed)
    earlier = set(np.concatenate([batches.indices(s)[0] for s in range(step)]))
    return Path(next(train.records[i].path for i in batches.indices(step)[0] if i not in earlier))


@pytest.mark.parametrize("content", [b"\xff\xd8\xff\xe0 not really a JPEG", b""],
                         ids=["corrupt JPEG", "zero-byte image"])
def test_an_unreadable_training_image_is_named_and_resume_finishes_after_the_fix(tree, tmp_path, content):
    config = tiny_config(str(tree), str(tmp_path / "run"), **SHORT)
    victim = train_image_read_first_at(tree, 2, config)
    original = victim.read_bytes()
    victim.write_bytes(content)
    with pytest.raises(RunError, match=re.escape(str(victim))) as caught:
        run(config)
    assert "The last good state, step 2, is intact" in str(caught.value) and "rerun with --resume" in str(caught.value)
    victim.write_bytes(original)
    report = run(tiny_config(str(tree), str(tmp_path / "run"), **SHORT, resume=True))
    assert report["resumed_from_step"] == 2 and np.isfinite(report["final"]["mAP"])


def test_non_image_files_in_an_image_folder_are_skipped(tree):
    train_folder = tree / "bounding_box_train"
    before = load_dataset("synthetic", str(tree)).train
    for name in ("Thumbs.db", ".DS_Store", "readme.txt", "._0001_c1s1_000001_00.jpg"):
        (train_folder / name).write_text("not an image")
    assert load_dataset("synthetic", str(tree)).train == before


def test_grayscale_and_png_images_train_a_png_file_name_is_named(tree, tmp_path):
    # Training reads pixels, not extensions: grey JPEGs and PNG files (under the layout's .jpg names) decode to RGB.
    for index, path in enumerate(sorted((tree / "bounding_box_train").glob("*.jpg"))):
        with Image.open(path) as image:
            image = image.convert("L")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG" if index % 2 else "JPEG")
        path.write_bytes(buffer.getvalue())
    report = run(tiny_config(str(tree), str(tmp_path / "run"), epochs=1, steps_per_epoch=2))
    assert np.isfinite(report["history"]["loss"][0]) and np.isfinite(report["final"]["mAP"])
    # A file named .png in a layout whose names end in .jpg is reported, not silently dropped.
    png = tree / "query" / "0001_c1s1_000001_00.png"
    png.write_bytes(b"")
    with pytest.raises(DatasetError, match=re.escape(f"{png}: name '{png.name}' does not match the expected pattern")):
        run(tiny_config(str(tree), str(tmp_path / "other")))


def test_a_dataset_folder_missing_a_split_is_named(tree, tmp_path):
    shutil.rmtree(tree / "query")
    with pytest.raises(DatasetError, match=re.escape(f"missing folder {tree / 'query'}")):
        run(tiny_config(str(tree), str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


def test_a_mars_mat_file_of_the_wrong_shape_is_named(tmp_path):
    mars = write_mars_tree(tmp_path)
    path = mars / "info" / "tracks_train_info.mat"
    scipy.io.savemat(path, {"track_train_info": np.ones((4, 3), np.int32)})
    with pytest.raises(DatasetError, match=re.escape(f"{path}: track_train_info must be a 2-D array with 4 columns")):
        run(tiny_config(str(tmp_path), str(tmp_path / "run"), dataset="mars"))
    assert not (tmp_path / "run").exists()


def test_an_msmt17_list_line_outside_the_root_is_named(tmp_path):
    msmt = write_msmt17_tree(tmp_path)
    with open(msmt / "list_train.txt", "a") as handle:
        handle.write("../../../etc/passwd 0\n")
    with pytest.raises(DatasetError, match=r"list_train\.txt, line 4: path '\.\./\.\./\.\./etc/passwd' "
                                           r"is outside the image folder"):
        run(tiny_config(str(tmp_path), str(tmp_path / "run"), dataset="msmt17"))
    assert not (tmp_path / "run").exists()


def keep_one_identity_in_camera(tree, camera: int) -> None:
    """Deletes camera `camera`'s training images of every identity but its first."""
    images = sorted((tree / "bounding_box_train").glob(f"*_c{camera}s*.jpg"))
    first = images[0].name.split("_")[0]
    for image in images:
        if image.name.split("_")[0] != first:
            image.unlink()


def test_a_camera_with_a_single_identity_is_dropped_from_training_or_named(tree, tmp_path):
    keep_one_identity_in_camera(tree, 3)
    report = run(tiny_config(str(tree), str(tmp_path / "run"), epochs=1, steps_per_epoch=2))
    assert report["dataset"]["dropped_cameras"] == {"2": 1}
    assert report["dataset"]["camera_classes"] == {"0": 0, "1": 1}
    with pytest.raises(SamplingError, match=r"camera 3 has 1 identities, fewer than --num_identities=4"):
        run(tiny_config(str(tree), str(tmp_path / "kept"), min_ids_per_camera=1))
    assert not (tmp_path / "kept").exists()


def test_p_by_k_impossible_for_every_camera_is_named(pristine, tmp_path):
    with pytest.raises(SamplingError, match=r"no camera has the 50 identities a triplet batch needs .*camera 1: \d+"):
        run(tiny_config(pristine, str(tmp_path / "run"), num_identities=50))
    assert not (tmp_path / "run").exists()


def parse_flags(argv):
    flag_values = flags.FlagValues()
    define_flags({"dataset": DATASET_NAMES, "backbone": tuple(BACKBONES)}, flag_values)
    flag_values(["train", *argv])
    return config_from_flags(flag_values)


def test_an_unknown_flag_is_named_by_the_command(tmp_path):
    result = subprocess.run([*train_command(tiny_config("d", str(tmp_path / "run"))), "--num_identitis=8"],
                            cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Unknown command line flag 'num_identitis'. Did you mean: num_identities ?" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["--margin=-0.3"], "--margin=-0.3: expected a number > 0"),
    (["--num_instances=1"], "--num_instances=1: expected an integer >= 2 (a triplet needs a positive)"),
    (["--checkpoint_every_steps=-5"], "--checkpoint_every_steps=-5: expected an integer >= 0"),
    (["--resume", "--overwrite"], "--resume=True: expected False with --overwrite"),
    (["--strategy=horovod"], "value should be one of <auto|one_device|mirrored|multi_worker>"),
    (["--mixed_precision=float8"], "value should be one of <none|bfloat16|float16>"),
])
def test_out_of_range_flags_are_named_with_what_is_expected(argv, message):
    with pytest.raises((ConfigError, flags.IllegalFlagValueError), match=re.escape(message)):
        parse_flags(argv)


def test_a_read_only_output_directory_is_refused_before_any_work(pristine, tmp_path):
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("running as root, which writes through directory permissions; write failures during "
                        "training are covered by the disk-full tests")
        with pytest.raises(RunError, match=re.escape(f"{parent} is not writable")):
            run(tiny_config(pristine, str(parent / "run")))
    finally:
        parent.chmod(0o755)


def test_a_full_disk_while_saving_the_state_keeps_the_last_state_and_resume_finishes(pristine, tmp_path, monkeypatch):
    real_write_json = checkpointing.write_json
    calls = []

    def fills_up(path, value):
        calls.append(path)
        if len(calls) == 3:  # the disk fills up while the third state is saved
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        real_write_json(path, value)

    monkeypatch.setattr(checkpointing, "write_json", fills_up)
    config = tiny_config(pristine, str(tmp_path / "run"), **SHORT)
    with pytest.raises(CheckpointError, match=r"cannot save the training state in .*: No space left on device "
                                              r"\(.*progress\.json\); the state of step 2 is intact"):
        run(config)
    state = Path(RunDir(str(tmp_path / "run")).state_dir)
    assert read_progress(str(tmp_path / "run"))["step"] == 2
    assert "step-00000003.index" in os.listdir(state), "step 3's files were written; progress.json does not name them"
    monkeypatch.setattr(checkpointing, "write_json", real_write_json)
    report = run(tiny_config(pristine, str(tmp_path / "run"), **SHORT, resume=True))
    assert report["resumed_from_step"] == 2 and np.isfinite(report["final"]["mAP"])
    assert sorted(os.listdir(state)) == ["progress.json", "step-00000003.data-00000-of-00001", "step-00000003.index",
                                         "step-00000004.data-00000-of-00001", "step-00000004.index"]


def test_a_full_disk_while_saving_weights_keeps_the_previous_file(pristine, tmp_path, monkeypatch):
    config = tiny_config(pristine, str(tmp_path / "run"), epochs=2, steps_per_epoch=1, lr_decay_epochs=())
    real_save = keras.Model.save_weights
    calls = []

    def fills_up(model, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            return real_save(model, path, *args, **kwargs)
        with open(path, "wb") as handle:  # the disk fills up part-way through the file
            handle.write(b"\x89HDF\r\n")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(keras.Model, "save_weights", fills_up)
    with pytest.raises(RunError, match=r"cannot write .*best.*\.h5: No space left on device\. "
                                       r"The last good state, step 1, is intact"):
        run(config)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(name for name in os.listdir(checkpoints) if name != "state") == ["last.weights.h5"]
    assert len(h5_arrays(str(checkpoints / "last.weights.h5"))) > 10, "epoch 1's weights are still whole"


def mount_namespace(probe_dir) -> list[str] | None:
    """A command prefix that runs a shell in a private mount namespace where tmpfs can be mounted, or None."""
    for prefix in (["unshare", "--mount"], ["unshare", "--mount", "--map-root-user"]):
        try:
            probe = subprocess.run([*prefix, "sh", "-c",
                                    f"mount -t tmpfs -o size=64k tmpfs {shlex.quote(str(probe_dir))}"],
                                   capture_output=True, timeout=30)
        except (FileNotFoundError, subprocess.TimeoutExpired):
            return None
        if probe.returncode == 0:
            return prefix
    return None


def test_a_real_full_or_read_only_filesystem_is_named_keeping_the_saved_state(pristine, tmp_path):
    mount = tmp_path / "mnt"
    mount.mkdir()
    prefix = mount_namespace(mount)
    if prefix is None:
        pytest.skip("this machine allows no private mount namespace (unshare); the disk-full tests above simulate one")
    config = tiny_config(pristine, str(mount / "run"), **SHORT)
    acan = build_acan(config, num_cameras=3, steps_per_epoch=4)
    state_bytes = sum(np.array(v).nbytes
                      for v in [*acan.weights, *acan.f_optimizer.variables, *acan.d_optimizer.variables])
    # A tmpfs that holds one saved state but not two: the second save (step 2) fills it.
    script = f"""
        mount -t tmpfs -o size={int(1.5 * state_bytes) // 1024}k tmpfs {mount}
        {shlex.join(train_command(config))}; echo "full: $?"
        cat {mount}/run/checkpoints/state/progress.json
        mount -o remount,ro {mount}
        {shlex.join(train_command(tiny_config(pristine, str(mount / "other"))))}; echo "read-only: $?"
    """
    result = subprocess.run([*prefix, "sh", "-c", script], cwd=REPO, env=subprocess_env(), capture_output=True,
                            text=True, timeout=300)
    assert "full: 1" in result.stdout, result.stderr[-3000:]
    assert re.search(rf"acan_tf.train: error: cannot save the training state in {mount}/run/checkpoints/state: "
                     rf"\S+; No space left on device; the state of step 1 is intact",
                     result.stderr), result.stderr[-3000:]
    assert '"step": 1' in result.stdout, "progress.json still names the state of step 1"
    assert "read-only: 1" in result.stdout
    assert f"acan_tf.train: error: --output_dir={mount}/other: {mount} is not writable" in result.stderr
    assert "Traceback" not in result.stderr
