"""Tests of the synthetic multi-camera benchmark generator."""

import collections
import dataclasses
import hashlib
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from acan_tf.config import SYNTHETIC_PRESETS
from acan_tf.data import synthetic
from acan_tf.data.synthetic import SyntheticSpec
from acan_tf.data.synthetic.presets import LOOKS, Look
from acan_tf.data.synthetic.spec import PRESET_SPECS

NAME = re.compile(r"^(\d{4})_c(\d)s1_(\d{6})_(\d{2})\.jpg$")
SMALL = SyntheticSpec(num_cameras=3, num_train_ids=4, num_test_ids=12, max_cameras_per_id=3,
                      train_images_per_camera=(2, 3), gallery_images_per_camera=(2, 3), height=64, width=32)


def _files(root, split):
    """(pid, 0-based camera, file name) of every image in a split."""
    result = []
    for name in sorted(os.listdir(os.path.join(root, split))):
        match = NAME.match(name)
        assert match, f"{split}/{name} does not follow the Market-1501 naming scheme"
        result.append((int(match.group(1)), int(match.group(2)) - 1, name))
    return result


def _pixels(root, split):
    """{(pid, camera): [float image, ...]} of a split."""
    images = collections.defaultdict(list)
    for pid, camid, name in _files(root, split):
        images[(pid, camid)].append(np.asarray(Image.open(os.path.join(root, split, name)), np.float64))
    return images


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory):
    """The SMALL spec generated once for the read-only tests."""
    return synthetic.generate(str(tmp_path_factory.mktemp("synthetic") / "tree"), SMALL)


@pytest.fixture(scope="module")
def unshifted_tree(tmp_path_factory):
    """The SMALL spec without camera shift."""
    spec = dataclasses.replace(SMALL, camera_shift=0.0)
    return synthetic.generate(str(tmp_path_factory.mktemp("synthetic") / "unshifted"), spec)


def test_tree_layout_names_and_image_sizes(small_tree):
    assert sorted(os.listdir(small_tree)) == ["bounding_box_test", "bounding_box_train", "query", "spec.json"]
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        files = _files(small_tree, split)
        assert files, split
        assert {camid for _, camid, _ in files} <= {0, 1, 2}
        for _, _, name in files[:5]:
            with Image.open(os.path.join(small_tree, split, name)) as image:
                assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (32, 64))
    with open(os.path.join(small_tree, "spec.json")) as f:
        document = json.load(f)
    assert document["spec"]["num_train_ids"] == 4 and document["spec"]["train_images_per_camera"] == [2, 3]


def test_identities_cameras_and_query_protocol(small_tree):
    train = collections.Counter((pid, camid) for pid, camid, _ in _files(small_tree, "bounding_box_train"))
    query = collections.Counter((pid, camid) for pid, camid, _ in _files(small_tree, "query"))
    gallery = collections.Counter((pid, camid) for pid, camid, _ in _files(small_tree, "bounding_box_test"))
    assert {pid for pid, _ in train} == set(range(1, 5))
    assert {pid for pid, _ in query} == {pid for pid, _ in gallery} == set(range(5, 17))
    # Exactly one query per (test identity, camera), the other takes of that camera in the gallery.
    assert set(query.values()) == {1}
    assert set(query) == set(gallery)
    assert all(2 <= count <= 3 for count in gallery.values())
    assert all(2 <= count <= 3 for count in train.values())
    for counts in (train, query):
        cameras_per_id = collections.Counter(pid for pid, _ in counts)
        assert min(cameras_per_id.values()) >= 2


def test_distractors_go_to_the_gallery_only(tmp_path):
    spec = SyntheticSpec(num_cameras=2, max_cameras_per_id=2, num_train_ids=1, num_test_ids=1, num_distractors=3,
                         height=32, width=16)
    root = synthetic.generate(str(tmp_path / "tree"), spec)
    assert [pid for pid, _, _ in _files(root, "bounding_box_test")].count(0) == 3
    assert 0 not in {pid for pid, _, _ in _files(root, "query")}


def _read_all(root):
    """{relative path: bytes} of every file of a tree."""
    contents = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                contents[os.path.relpath(path, root)] = f.read()
    return contents


def test_same_spec_gives_byte_identical_trees_and_another_seed_differs(small_tree, tmp_path):
    again = _read_all(synthetic.generate(str(tmp_path / "again"), SMALL))
    assert again == _read_all(small_tree)
    reseeded = synthetic.generate(str(tmp_path / "reseeded"), dataclasses.replace(SMALL, seed=1))
    images = {content for name, content in _read_all(reseeded).items() if name.endswith(".jpg")}
    assert images and not images & set(again.values())


def test_an_image_does_not_depend_on_the_other_identities(tmp_path):
    fewer = synthetic.generate(str(tmp_path / "fewer"), dataclasses.replace(SMALL, num_test_ids=2))
    more = synthetic.generate(str(tmp_path / "more"), dataclasses.replace(SMALL, num_test_ids=4))
    train_fewer = _read_all(os.path.join(fewer, "bounding_box_train"))
    assert train_fewer and train_fewer == _read_all(os.path.join(more, "bounding_box_train"))


def test_generate_refuses_a_non_empty_directory_and_leaves_it_alone(tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="busy"):
        synthetic.generate(str(target), SMALL)
    assert os.listdir(target) == ["notes.txt"] and (target / "notes.txt").read_text() == "mine"
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(FileExistsError, match="a_file"):
        synthetic.generate(str(tmp_path / "a_file"), SMALL)


def test_generate_fills_an_existing_empty_directory(tmp_path):
    target = tmp_path / "empty"
    target.mkdir()
    synthetic.generate(str(target), SMALL)
    assert os.path.isfile(target / "spec.json")


def test_interrupted_generation_leaves_no_tree(tmp_path, monkeypatch):
    calls = []

    def failing_render(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return np.zeros((SMALL.height, SMALL.width, 3), np.uint8)

    monkeypatch.setattr(synthetic.tree, "render", failing_render)
    with pytest.raises(KeyboardInterrupt):
        synthetic.generate(str(tmp_path / "tree"), SMALL)
    assert os.listdir(tmp_path) == []


def test_ensure_generates_then_reuses_and_refuses_another_spec(tmp_path, monkeypatch):
    target = str(tmp_path / "tree")
    assert synthetic.ensure(target, SMALL) == target
    before = _read_all(target)

    def must_not_generate(*args):
        raise AssertionError("ensure() regenerated an existing tree")

    monkeypatch.setattr(synthetic.tree, "generate", must_not_generate)
    assert synthetic.ensure(target, SMALL) == target
    assert _read_all(target) == before
    other = dataclasses.replace(SMALL, seed=7)
    with pytest.raises(synthetic.SpecMismatchError) as error:
        synthetic.ensure(target, other)
    message = str(error.value)
    assert target in message and '"seed": 0' in message and '"seed": 7' in message
    assert _read_all(target) == before


def test_ensure_refuses_a_folder_that_is_not_a_synthetic_tree(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"")
    with pytest.raises(FileExistsError, match="spec.json"):
        synthetic.ensure(str(tmp_path / "photos"), SMALL)


@pytest.mark.parametrize(
    "field, value",
    [("num_cameras", 1), ("num_cameras", 10), ("min_cameras_per_id", 1), ("max_cameras_per_id", 7),
     ("train_images_per_camera", (3, 2)), ("gallery_images_per_camera", (0, 2)), ("num_test_ids", 0),
     ("camera_shift", 1.5), ("seed", -1), ("height", 8)],
)
def test_spec_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0]):
        SyntheticSpec(**{field: value})


def test_camera_styles_differ_and_vanish_without_camera_shift():
    shifted = synthetic.make_camera_styles(SyntheticSpec(num_cameras=4))
    assert len({round(style.exposure, 6) for style in shifted}) == 4
    assert min(np.abs(a.gains - b.gains).max() for a in shifted for b in shifted if a is not b) > 0.05
    neutral = synthetic.make_camera_styles(SyntheticSpec(num_cameras=4, camera_shift=0.0))
    for style in neutral:
        np.testing.assert_allclose(style.gains, 1.0, atol=1e-6)
        assert (style.exposure, style.gamma, style.saturation, style.downsample) == (1.0, 1.0, 1.0, 1.0)
        np.testing.assert_allclose(style.view, 1 / 3)


def _mean_colour_spread(root):
    """Mean distance of per-image mean colours: same identity within a camera, and across cameras."""
    images = _pixels(root, "bounding_box_test")
    means = {key: [image.mean(axis=(0, 1)) for image in value] for key, value in images.items()}
    within, across = [], []
    for (pid, camid), colours in means.items():
        within += [np.linalg.norm(a - b) for i, a in enumerate(colours) for b in colours[i + 1:]]
        for (other_pid, other_camid), others in means.items():
            if other_pid == pid and other_camid > camid:
                across += [np.linalg.norm(a - b) for a in colours for b in others]
    return np.mean(within), np.mean(across)


def test_camera_shift_separates_cameras_more_than_takes(small_tree, unshifted_tree):
    within, across = _mean_colour_spread(small_tree)
    assert across > 1.5 * within
    within_unshifted, across_unshifted = _mean_colour_spread(unshifted_tree)
    assert across_unshifted / within_unshifted < 0.75 * across / within


def _colour_bands(image, bands=8):
    """A crude person descriptor: mean colour of horizontal bands of the image's central half."""
    height, width = image.shape[:2]
    centre = image[:, width // 4: 3 * width // 4]
    return centre.reshape(bands, height // bands, -1, 3).mean(axis=(1, 2)).ravel()


def _nearest_neighbour_accuracy(tree, same_camera):
    """How often a gallery image's nearest other image, in its camera or in the others, shows its person."""
    features = {key: [_colour_bands(image) for image in images]
                for key, images in _pixels(tree, "bounding_box_test").items()}
    hits, trials = 0, 0
    for (pid, camid), queries in features.items():
        candidates = [(other_pid, feature) for (other_pid, other_camid), others in features.items()
                      if (other_camid == camid) == same_camera for feature in others]
        for query in queries:
            distances = [(np.abs(query - feature).mean(), other_pid) for other_pid, feature in candidates
                         if feature is not query]
            hits += min(distances, key=lambda pair: pair[0])[1] == pid
            trials += 1
    return hits / trials


def test_identities_are_told_apart_within_a_camera_and_confused_across(small_tree, unshifted_tree):
    within = _nearest_neighbour_accuracy(small_tree, same_camera=True)
    identities_per_camera = SMALL.num_test_ids * 2 / SMALL.num_cameras  # at least 2 cameras per identity
    assert within > 3 / identities_per_camera
    gap = within - _nearest_neighbour_accuracy(small_tree, same_camera=False)
    gap_unshifted = (_nearest_neighbour_accuracy(unshifted_tree, same_camera=True)
                     - _nearest_neighbour_accuracy(unshifted_tree, same_camera=False))
    assert gap > gap_unshifted + 0.1


def test_ensure_reports_a_corrupt_spec_file(tmp_path):
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "spec.json").write_text("{not json")
    with pytest.raises(ValueError, match="spec.json is not valid JSON"):
        synthetic.ensure(str(tmp_path / "tree"), SMALL)


# ---- presets ---------------------------------------------------------------------------------------------------

REALISTIC_TINY = synthetic.preset_spec("realistic", num_train_ids=6, num_test_ids=5, height=32, width=16)


def _digest(root):
    """SHA-256 over every file's relative path and bytes, in sorted order."""
    digest = hashlib.sha256()
    for name, content in sorted(_read_all(root).items()):
        digest.update(name.encode())
        digest.update(content)
    return digest.hexdigest()


def test_the_default_preset_draws_the_images_and_spec_it_drew_before_presets_existed(small_tree, tmp_path):
    # Digests of trees made by the generator before presets existed (commit 96e2e4b): the paper's tables keep their
    # benchmark.
    assert _digest(small_tree) == "21b55325ace2fac97d49cf80851c2041a599f4cf45c8dc52dc56acc2114fe0bd"
    shifted = dataclasses.replace(SMALL, camera_shift=0.5, num_distractors=3)
    assert _digest(synthetic.generate(str(tmp_path / "shifted"), shifted)) == \
        "0a1263224ee81d5c18046b9b82b63c50c45bb3e7ceb6826934f614b50bf2426d"
    assert synthetic.preset_spec("default") == SyntheticSpec()


def test_the_realistic_preset_is_a_two_camera_tree_of_the_real_protocol_drawn_deterministically(tmp_path):
    root = synthetic.generate(str(tmp_path / "realistic"), REALISTIC_TINY)
    train = collections.Counter((pid, camid) for pid, camid, _ in _files(root, "bounding_box_train"))
    query = collections.Counter((pid, camid) for pid, camid, _ in _files(root, "query"))
    gallery = collections.Counter((pid, camid) for pid, camid, _ in _files(root, "bounding_box_test"))
    assert train == {(pid, camid): 2 for pid in range(1, 7) for camid in (0, 1)}
    assert query == gallery == {(pid, camid): 1 for pid in range(7, 12) for camid in (0, 1)}
    with open(os.path.join(root, "spec.json")) as f:
        document = json.load(f)
    assert document["spec"]["preset"] == "realistic" and document["look"]["camera_views"] == [[0.5, 0.5, 0.0],
                                                                                            [0.0, 0.0, 1.0]]
    again = _read_all(synthetic.generate(str(tmp_path / "again"), REALISTIC_TINY))
    assert again == _read_all(root)
    default = _read_all(synthetic.generate(str(tmp_path / "default"), dataclasses.replace(REALISTIC_TINY,
                                                                                       preset="default")))
    assert {name: content for name, content in default.items() if name.endswith(".jpg")}.keys() == \
        {name for name in again if name.endswith(".jpg")}
    assert not {content for name, content in default.items() if name.endswith(".jpg")} & set(again.values())


def test_the_realistic_preset_is_frozen(tmp_path):
    # The calibrated benchmark (docs/results.md, "The realistic preset"): every method result on it is measured on
    # exactly these images. A change of its look or of the generator must be a new, recalibrated benchmark.
    assert _digest(synthetic.generate(str(tmp_path / "realistic"), REALISTIC_TINY)) == \
        "6b28d5fabceeb1a5891d10cde2c28ba60254f52468e5ccd561ab30f48845deeb"


def test_realistic_cameras_see_people_from_the_front_or_back_and_from_the_side():
    styles = synthetic.make_camera_styles(REALISTIC_TINY)
    np.testing.assert_allclose([style.view for style in styles], [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])


def test_realistic_look_alikes_wear_the_clothes_and_some_the_bag_of_an_earlier_person_of_their_split():
    spec = synthetic.preset_spec("realistic", num_train_ids=30, num_test_ids=30)
    people = [synthetic.make_person(spec, index) for index in range(60)]

    def clothes(person):
        return person.upper.colour.tobytes(), person.lower.colour.tobytes()

    alike = [(first, second) for second in range(60) for first in range(second)
             if clothes(people[first]) == clothes(people[second])]
    assert alike and all((first < 30) == (second < 30) for first, second in alike)
    # Some of them also carry the same bag and wear the same shoes; none is the other person entirely.
    assert any(people[a].bag_colour.tobytes() == people[b].bag_colour.tobytes() for a, b in alike)
    assert all(people[a].skin.tobytes() != people[b].skin.tobytes() for a, b in alike)
    default = [synthetic.make_person(SyntheticSpec(), index) for index in range(60)]
    assert len({clothes(person) for person in default}) == 60


def test_an_unknown_preset_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="preset must be one of default, realistic, got 'sunny'"):
        SyntheticSpec(preset="sunny")
    with pytest.raises(ValueError, match="unknown synthetic preset 'sunny'; choose one of default, realistic"):
        synthetic.preset_spec("sunny")


@pytest.mark.parametrize("field, value", [("occlusion", 1.5), ("resolution", (2.0, 1.0)),
                                          ("camera_views", ((1.0, 0.0),))])
def test_look_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=f"Look.{field}"):
        Look(**{field: value})


def test_every_preset_has_a_look_and_a_benchmark():
    assert tuple(LOOKS) == tuple(PRESET_SPECS) == SYNTHETIC_PRESETS
    assert all(PRESET_SPECS[name].preset == name for name in SYNTHETIC_PRESETS)


def _take_differences(root):
    """Mean absolute pixel difference between the two training takes of each (person, camera)."""
    takes = collections.defaultdict(list)
    for pid, camid, name in _files(root, "bounding_box_train"):
        takes[pid, camid].append(np.asarray(Image.open(os.path.join(root, "bounding_box_train", name)), np.float32))
    return np.asarray([np.abs(first - second).mean() for first, second in takes.values()])


def test_tracked_visits_are_frames_of_one_track_not_copies(tmp_path, monkeypatch):
    spec = synthetic.preset_spec("realistic", num_train_ids=8, num_test_ids=2, height=64, width=32)
    differences = {}
    for share in (0.0, 1.0):
        monkeypatch.setitem(LOOKS, "realistic", dataclasses.replace(LOOKS["realistic"], tracked_visits=share))
        differences[share] = _take_differences(synthetic.generate(str(tmp_path / str(share)), spec))
    # One track: the same spot, direction and lighting, so its frames differ far less than independent takes; but the
    # walking phase and the box move, so no frame is a copy of another.
    assert np.median(differences[1.0]) < 0.5 * np.median(differences[0.0])
    assert differences[1.0].min() > 0.5
