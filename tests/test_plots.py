"""Tests of the analysis figures and the TensorBoard image/projector outputs."""

import io
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from PIL import Image
from tensorboard.plugins import projector

from acan_tf.evaluation import plots
from acan_tf.evaluation.tensorboard import log_png_images, write_projector

MATCH_RGB = (0x1A, 0x98, 0x50)
MISMATCH_RGB = (0xD7, 0x30, 0x27)


def open_png(path) -> Image.Image:
    """The PNG at `path`, checked to be a real image of plausible size."""
    assert os.path.getsize(path) > 1000
    image = Image.open(path)
    assert image.format == "PNG"
    assert 200 <= image.width <= 5000 and 200 <= image.height <= 5000
    return image


def row_normalised(num_cameras: int, seed: int = 0) -> np.ndarray:
    matrix = np.random.default_rng(seed).random((num_cameras, num_cameras))
    return matrix / matrix.sum(axis=1, keepdims=True)


def count_pixels(image: Image.Image, rgb: tuple[int, int, int]) -> int:
    return int(np.all(np.asarray(image.convert("RGB")) == rgb, axis=-1).sum())


def test_subsample_indices_is_seeded_sorted_and_unique():
    first = plots.subsample_indices(100, 10, seed=3)
    assert first.tolist() == plots.subsample_indices(100, 10, seed=3).tolist()
    assert first.tolist() == sorted(set(first.tolist()))
    assert len(first) == 10 and first.max() < 100
    assert first.tolist() != plots.subsample_indices(100, 10, seed=4).tolist()
    assert plots.subsample_indices(5, 10).tolist() == [0, 1, 2, 3, 4]


def test_confusion_matrix_file_and_buffer_hold_the_same_png(tmp_path):
    path = tmp_path / "confusion.png"
    assert plots.plot_confusion_matrix(row_normalised(6), path) == path
    buffer = plots.plot_confusion_matrix(row_normalised(6), io.BytesIO())
    assert path.read_bytes() == buffer.getvalue()
    open_png(path)


def test_confusion_matrices_share_one_figure_per_panel(tmp_path):
    single = open_png(plots.plot_confusion_matrix(row_normalised(8), tmp_path / "one.png"))
    schemes = {scheme: row_normalised(8, seed) for seed, scheme in enumerate(["none", "grl", "oce", "ace"])}
    four = open_png(plots.plot_confusion_matrices(schemes, tmp_path / "four.png", title="Duke"))
    assert four.width > 3 * single.width
    # Fifteen cameras (MSMT17) with an absent camera's zero row, on an absolute scale.
    msmt = row_normalised(15)
    msmt[2] = 0
    open_png(plots.plot_confusion_matrix(msmt, tmp_path / "msmt.png", vmax=1.0))


@pytest.mark.parametrize(
    "matrix, message",
    [
        (np.ones((3, 4)) / 4, "square"),
        (np.array([[3.0, 1.0], [2.0, 2.0]]), "row-normalised"),
        (np.array([[1.5, -0.5], [0.5, 0.5]]), "non-negative"),
    ],
)
def test_confusion_matrix_rejects_bad_matrices_and_keeps_the_old_file(tmp_path, matrix, message):
    (tmp_path / "old.png").write_bytes(b"old")
    with pytest.raises(ValueError, match=message):
        plots.plot_confusion_matrix(matrix, tmp_path / "old.png")
    assert os.listdir(tmp_path) == ["old.png"]
    assert (tmp_path / "old.png").read_bytes() == b"old"


def test_confusion_matrix_rejects_wrong_camera_names(tmp_path):
    with pytest.raises(ValueError, match="camera_names has 2 names"):
        plots.plot_confusion_matrix(row_normalised(3), tmp_path / "bad.png", camera_names=["a", "b"])


def test_tsne_with_subsampling_and_a_large_perplexity(tmp_path):
    rng = np.random.default_rng(0)
    camids = np.repeat(np.arange(3), 20)
    features = rng.normal(size=(60, 16)) + 4 * camids[:, None]
    open_png(plots.plot_tsne(features, camids, tmp_path / "tsne.png", max_points=40, perplexity=100))


def test_tsne_rejects_mismatched_camids(tmp_path):
    with pytest.raises(ValueError, match="60 features but camids has shape"):
        plots.plot_tsne(np.zeros((60, 4)), np.zeros(59, dtype=int), tmp_path / "bad.png")


def test_cmc_single_and_several_curves(tmp_path):
    curve = np.linspace(0.5, 1.0, 50)
    open_png(plots.plot_cmc(curve, tmp_path / "one.png"))
    open_png(plots.plot_cmc({"grl": curve, "oce": curve * 0.9}, tmp_path / "two.png", max_rank=10))


def test_cmc_rejects_percentages(tmp_path):
    with pytest.raises(ValueError, match=r"fractions in \[0, 1\]"):
        plots.plot_cmc(np.array([45.0, 60.0]), tmp_path / "bad.png")


@pytest.fixture
def gallery_images(tmp_path):
    """Grey images (no pixel in the border colours) for one query and three gallery items."""
    paths = []
    for index in range(4):
        path = tmp_path / f"image{index}.png"
        Image.new("RGB", (10, 20), (60 * index, 60 * index, 60 * index)).save(path)
        paths.append(str(path))
    return paths


def test_ranked_list_skips_same_camera_matches(tmp_path, gallery_images):
    query, gallery = gallery_images[:1], gallery_images[1:]
    # Nearest: the query's person in the query's own camera (a junk entry under the Market
    # protocol), then the same person in another camera, then another person.
    distances = np.array([[0.1, 0.2, 0.3]])
    image = open_png(plots.plot_ranked_list(
        query, gallery, distances, [7], [7, 7, 8], [0], [0, 1, 1], tmp_path / "ranked.png", topk=2
    ))
    # Without the protocol both shown items would be the same person: green, green.
    assert count_pixels(image, MATCH_RGB) > 50
    assert count_pixels(image, MISMATCH_RGB) > 50


def test_ranked_list_of_tracklets_from_ranked_indices(tmp_path, gallery_images):
    tracklets = [[path, "first frame only is read"] for path in gallery_images[1:]]
    ranking = np.array([[2, 1, 0]])
    image = open_png(plots.plot_ranked_list(
        [gallery_images[:1]], tracklets, ranking, [7], [9, 9, 9], [0], [1, 1, 1],
        tmp_path / "ranked.png", topk=3,
    ))
    assert count_pixels(image, MATCH_RGB) == 0
    assert count_pixels(image, MISMATCH_RGB) > 50


def test_ranked_list_rejects_bad_inputs(tmp_path, gallery_images):
    with pytest.raises(ValueError, match="query inputs must be non-empty and of equal length"):
        plots.plot_ranked_list(gallery_images[:1], gallery_images, np.zeros((1, 4)), [1, 2], [1] * 4,
                               [0], [0] * 4, tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"\(num_query, num_gallery\) = \(1, 4\)"):
        plots.plot_ranked_list(gallery_images[:1], gallery_images, np.zeros((1, 3)), [1], [1] * 4,
                               [0], [0] * 4, tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"must lie in \[0, 4\)"):
        plots.plot_ranked_list(gallery_images[:1], gallery_images, np.array([[4]]), [1], [1] * 4,
                               [0], [0] * 4, tmp_path / "bad.png")


def evaluations(scale: float) -> list[dict]:
    return [{"epoch": epoch, "mAP": scale * epoch / 30, "rank1": scale * epoch / 20, "loss": 1.0}
            for epoch in (20, 5, 10)]


def test_convergence_one_run_and_several(tmp_path):
    open_png(plots.plot_convergence(evaluations(0.5), tmp_path / "one.png"))
    open_png(plots.plot_convergence({"ACAN-GRL": evaluations(0.5), "ACAN-OCE": evaluations(0.4)},
                                    tmp_path / "two.png"))


def test_convergence_rejects_empty_and_incomplete_histories(tmp_path):
    with pytest.raises(ValueError, match="history is empty"):
        plots.plot_convergence([], tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"history 'oce'\[1\] lacks \['rank1'\]"):
        plots.plot_convergence({"oce": [{"epoch": 1, "mAP": 0.1, "rank1": 0.2}, {"epoch": 2, "mAP": 0.2}]},
                               tmp_path / "bad.png")


def test_sweep_with_seeds_and_with_explicit_stds(tmp_path):
    lambdas = [0.0, 0.5, 1.0]
    open_png(plots.plot_sweep(lambdas, {"mAP": [0.3, 0.4, 0.35], "rank1": [[0.5, 0.6], [0.6, 0.7], [0.55, 0.6]]},
                              tmp_path / "lambda.png", xlabel="λ"))
    open_png(plots.plot_sweep([64, 128], {"mAP": [0.4, 0.5]}, tmp_path / "width.png",
                              xlabel="discriminator width", stds={"mAP": [0.01, 0.02]}))


def test_sweep_rejects_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError, match="metric 'mAP' has 2 entries for 3 values"):
        plots.plot_sweep([0, 1, 2], {"mAP": [0.1, 0.2]}, tmp_path / "bad.png", xlabel="λ")
    with pytest.raises(ValueError, match=r"stds\['mAP'\] has shape \(1,\), expected \(2,\)"):
        plots.plot_sweep([0, 1], {"mAP": [0.1, 0.2]}, tmp_path / "bad.png", xlabel="λ", stds={"mAP": [0.1]})


def read_images(logdir) -> dict[str, tuple[int, int]]:
    """{tag: (width, height)} of every image summary in the logdir's event files."""
    images = {}
    for event_file in tf.io.gfile.glob(os.path.join(logdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "images"
                width, height, _ = tf.make_ndarray(value.tensor)
                images[value.tag] = (int(width), int(height))
    return images


def test_log_png_images_from_paths_bytes_and_a_writer(tmp_path):
    cmc_path = plots.plot_cmc(np.linspace(0.5, 1, 20), tmp_path / "cmc.png")
    confusion = plots.plot_confusion_matrix(row_normalised(4), io.BytesIO()).getvalue()
    log_png_images(tmp_path / "logs", {"cmc": cmc_path, "confusion": confusion}, step=3)
    writer = tf.summary.create_file_writer(str(tmp_path / "writer"))
    log_png_images(writer, {"cmc": cmc_path}, step=4)
    assert read_images(tmp_path / "logs") == {
        "cmc": Image.open(cmc_path).size,
        "confusion": Image.open(io.BytesIO(confusion)).size,
    }
    assert read_images(tmp_path / "writer") == {"cmc": Image.open(cmc_path).size}


def test_log_png_images_rejects_missing_and_non_png_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no PNG file at"):
        log_png_images(tmp_path, {"x": tmp_path / "missing.png"}, step=0)
    with pytest.raises(ValueError, match="'x' is not a PNG"):
        log_png_images(tmp_path, {"x": b"GIF89a"}, step=0)


def test_write_projector_subsamples_rows_with_their_metadata(tmp_path):
    features = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    row = list(range(30))
    write_projector(tmp_path, features, {"row": row, "camid": [r % 3 for r in row]}, max_points=10)

    config = text_format.Parse((tmp_path / "projector_config.pbtxt").read_text(), projector.ProjectorConfig())
    (embedding,) = config.embeddings
    assert embedding.tensor_name == "embeddings/.ATTRIBUTES/VARIABLE_VALUE"
    lines = (tmp_path / embedding.metadata_path).read_text().splitlines()
    assert lines[0] == "row\tcamid" and len(lines) == 11
    kept = [int(line.split("\t")[0]) for line in lines[1:]]
    assert all(int(line.split("\t")[1]) == r % 3 for line, r in zip(lines[1:], kept))

    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path)))
    stored = reader.get_tensor(embedding.tensor_name)
    assert stored.shape == (10, 8)
    np.testing.assert_array_equal(stored, features[kept])


def test_write_projector_single_column_has_no_header(tmp_path):
    write_projector(tmp_path, np.ones((4, 2)), {"pid": [5, 6, 7, 8]}, name="features")
    assert (tmp_path / "metadata.tsv").read_text().splitlines() == ["5", "6", "7", "8"]
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path)))
    assert reader.get_variable_to_shape_map()["features/.ATTRIBUTES/VARIABLE_VALUE"] == [4, 2]


def test_write_projector_rejects_mismatched_metadata(tmp_path):
    with pytest.raises(ValueError, match="metadata column 'camid' has 3 values for 4 features"):
        write_projector(tmp_path, np.ones((4, 2)), {"camid": [0, 1, 2]})
