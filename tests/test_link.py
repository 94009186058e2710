"""python -m acan_tf.link: new footage's camera-local ids linked across cameras with an export; bad inputs."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from acan_tf.data import load_dataset
from acan_tf.data.datasets.cameras import scan_cameras
from acan_tf.deploy import linker, quantize
from acan_tf.deploy.exporter import export_run
from acan_tf.deploy.linker import link
from acan_tf.errors import UserError
from tests.run_fixtures import HEIGHT, WIDTH, make_run

pytestmark = pytest.mark.slow  # an export, and the command in subprocesses

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_link(*args):
    return subprocess.run([sys.executable, "-m", "acan_tf.link", *args], cwd=REPO, capture_output=True, text=True)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_tree):
    """(export folder, footage folder): the tiny run exported calibrated; its test split as <camera>/<person>/."""
    base = tmp_path_factory.mktemp("link")
    make_run(str(base / "run"), data_root=tiny_tree)
    export = export_run(str(base / "run"), str(base / "models"), "acan", formats=("saved_model", "onnx")).path
    data = load_dataset("synthetic", tiny_tree)
    for record in (*data.query, *data.gallery):
        folder = base / "footage" / f"cam{record.camid + 1}" / f"id{record.pid:03d}"
        os.makedirs(folder, exist_ok=True)
        shutil.copy(record.path, folder)
    return export, str(base / "footage")


def copy_footage(footage, destination):
    shutil.copytree(footage, destination)
    return str(destination)


def test_links_with_the_shared_rule_at_the_cards_threshold(setup, tmp_path):
    export, footage = setup
    result = run_link(f"--export={export}", f"--footage={footage}", f"--output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    document = json.load(open(tmp_path / "identities.json"))
    card = json.load(open(os.path.join(export, "model.json")))
    threshold = card["calibration"]["formats"]["onnx"]["links"]["similarity_threshold"]
    assert document["threshold"]["similarity_threshold"] == threshold
    # The same components from the rule called here on the ONNX model's features.
    scan = scan_cameras(footage)
    features = quantize.onnx_features(os.path.join(export, "model.onnx"), scan.records, HEIGHT, WIDTH, 64)
    cameras = np.array([r.camid for r in scan.records])
    local_ids = np.array([r.pid for r in scan.records])
    association = link(features, cameras, local_ids, threshold)
    expected = sorted(sorted(f"{scan.identities[int(association.proxies.local_ids[p])][0]}/"
                             f"{scan.identities[int(association.proxies.local_ids[p])][1]}"
                             for p in np.flatnonzero(association.pseudo_ids == pseudo))
                      for pseudo in range(association.pseudo_ids.max() + 1))
    found = sorted(sorted(f"{m['camera']}/{m['local_id']}" for m in identity["members"])
                   for identity in document["identities"])
    assert found == expected
    for identity in document["identities"]:
        assert len({m["camera"] for m in identity["members"]}) == len(identity["members"]) >= 2
    assert document["local_ids"] == len(scan.identities)
    page = open(tmp_path / "identities.html").read()
    assert page.count("data:image/jpeg;base64,") >= 2 and "Cross-camera identities" in page


def test_saved_model_runtime(setup, tmp_path):
    export, footage = setup
    result = run_link(f"--export={export}", f"--footage={footage}", f"--output_dir={tmp_path}",
                      "--runtime=saved_model", "--link_threshold=0.2")
    assert result.returncode == 0, result.stderr
    document = json.load(open(tmp_path / "identities.json"))
    assert document["threshold"]["source"] == "--link_threshold" and document["model"]["runtime"] == "saved_model"


def test_bad_inputs_get_one_line_and_write_nothing(setup, tmp_path):
    export, footage = setup
    out = tmp_path / "out"

    def refused(*args, expected):
        result = run_link(f"--export={export}", f"--output_dir={out}", *args)
        assert result.returncode == 1, result.stdout
        # One line of ours (TensorFlow's own start-up lines may precede it), no traceback.
        lines = [line for line in result.stderr.splitlines() if line.startswith("acan_tf.link: error: ")]
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.stderr, result.stderr
        assert not out.exists()

    # The command's one-line form is checked on an undecodable image; the other refusals come from the library it
    # calls.
    empty = copy_footage(footage, tmp_path / "empty")
    os.makedirs(os.path.join(empty, "cam9"))
    camera = re.escape(os.path.join(empty, "cam9"))
    with pytest.raises(UserError, match=f"the camera folder {camera} holds no local id"):
        linker.read_footage(empty)
    single = copy_footage(footage, tmp_path / "single")
    for camera in ("cam2", "cam3"):
        shutil.rmtree(os.path.join(single, camera))
    with pytest.raises(UserError, match=r"one camera \(cam1\): there is nothing to link across cameras"):
        linker.read_footage(single)
    card, _ = linker.read_export(export, "onnx")
    with pytest.raises(UserError, match="--link_threshold=1.5: a cosine similarity"):
        linker.link_threshold(card, "onnx", 1.5)
    broken = copy_footage(footage, tmp_path / "broken")
    bad = os.path.join(broken, "cam1", sorted(os.listdir(os.path.join(broken, "cam1")))[0], "bad.jpg")
    open(bad, "wb").write(b"not a jpeg")
    refused(f"--footage={broken}", expected=f"1 image(s) cannot be decoded ({bad}")
    skipped = run_link(f"--export={export}", f"--footage={broken}", f"--output_dir={out}", "--bad_images=skip")
    assert skipped.returncode == 0, skipped.stderr
    assert f"skipped {bad}" in skipped.stdout
    assert json.load(open(out / "identities.json"))["skipped_images"][0]["path"] == bad


def test_an_uncalibrated_export_asks_for_a_threshold(tmp_path, setup):
    _, footage = setup
    make_run(str(tmp_path / "run"), data_root=str(tmp_path / "gone"))
    export = export_run(str(tmp_path / "run"), str(tmp_path / "models"), "acan", formats=("onnx",)).path
    result = run_link(f"--export={export}", f"--footage={footage}", f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 1 and "no calibrated linking threshold for onnx" in result.stderr
    assert "--link_threshold=S" in result.stderr and not (tmp_path / "out").exists()
