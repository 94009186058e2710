"""The deployment kit (export/): preprocessing as in training, the ONNX edge runner, and the TF Serving REST client."""

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from PIL import Image
from tensorflow.core.protobuf import saved_model_pb2

from acan_tf.data.pipeline import decode_image
from acan_tf.deploy.exporter import export_run
from acan_tf.evaluation.camera_norm import STATISTICS_FILE, CameraStatistics
from tests.run_fixtures import HEIGHT, WIDTH, make_run

pytestmark = pytest.mark.slow  # an exported model and the kit's scripts in subprocesses: the full suite only

KIT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "export")
sys.path.insert(0, KIT)

import client  # noqa: E402
import matching  # noqa: E402
import onnx_infer  # noqa: E402
import preprocess  # noqa: E402

# Sizes larger, smaller and equal to the model's 32×16 input, with grey and RGBA files.
IMAGES = {"a.png": ((48, 24), "RGB"), "b.png": ((20, 10), "RGB"), "c.png": ((32, 16), "L"), "d.png": ((70, 30), "RGBA")}


@pytest.fixture(scope="module")
def model(tiny_tree, tmp_path_factory):
    """(the trained ACAN, its export folder OUT/acan/1, with the statistics of the tiny tree's cameras)."""
    run_dir = str(tmp_path_factory.mktemp("run"))
    acan = make_run(run_dir, data_root=tiny_tree)
    return acan, export_run(run_dir, str(tmp_path_factory.mktemp("models")), "acan").path


def write_images(folder, names=IMAGES, seed=0):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, ((height, width), mode) in names.items():
        channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
        pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
        Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(os.path.join(folder, name))
    return [os.path.join(folder, name) for name in sorted(names)]


def training_pixels(path):
    """Training's decode and resize (acan_tf.data.pipeline), rounded to the uint8 the exported model takes."""
    return tf.cast(tf.round(decode_image(tf.constant(path), HEIGHT, WIDTH)), tf.uint8).numpy()


def reference_embeddings(acan, pixels):
    features = acan.embed(tf.constant(pixels, tf.float32), training=False).numpy().astype(np.float64)
    return features / np.linalg.norm(features, axis=-1, keepdims=True)


def json_lines(text):
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("size", [(48, 24), (20, 10), (32, 16), (256, 128), (9, 130)])
def test_resize_matches_tf_image_resize(size):
    image = np.random.default_rng(1).integers(0, 256, (*size, 3), dtype=np.uint8)
    expected = tf.image.resize(tf.constant(image, tf.float32), (HEIGHT, WIDTH)).numpy()
    resized = preprocess.resize_bilinear(image, HEIGHT, WIDTH)
    assert resized.shape == (HEIGHT, WIDTH, 3) and resized.dtype == np.float32
    np.testing.assert_allclose(resized, expected, rtol=0, atol=1e-4)


def test_load_image_gives_training_pixels(tmp_path):
    for path in write_images(tmp_path):
        np.testing.assert_array_equal(preprocess.load_image(path, HEIGHT, WIDTH), training_pixels(path))


def test_edge_runner_needs_no_tensorflow_and_matches_it(model, tmp_path):
    acan, export_dir = model
    paths = write_images(tmp_path / "images")
    # As `python export/onnx_infer.py`, with TensorFlow, Keras and acan_tf made unimportable.
    blocked = ("import runpy, sys; sys.modules.update(tensorflow=None, keras=None, acan_tf=None); "
               f"sys.path.insert(0, {KIT!r}); sys.argv = ['onnx_infer.py'] + sys.argv[1:]; "
               f"runpy.run_path({os.path.join(KIT, 'onnx_infer.py')!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", blocked, "--model", export_dir, str(tmp_path / "images")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert [record["item"] for record in records] == paths
    expected = reference_embeddings(acan, np.stack([training_pixels(path) for path in paths]))
    np.testing.assert_allclose([record["embedding"] for record in records], expected, rtol=0, atol=1e-4)


def test_edge_runner_tracklet_is_the_normalised_mean_of_frame_features(model, tmp_path, capsys):
    acan, export_dir = model
    frames = write_images(tmp_path / "track")
    argv = ["--model", os.path.join(export_dir, "model.onnx"), "--threads", "1", "--tracklets", str(tmp_path / "track")]
    assert onnx_infer.main(argv) == 0
    (record,) = json_lines(capsys.readouterr().out)
    expected = reference_embeddings(acan, np.stack([training_pixels(path) for path in frames])[None])
    assert record["item"] == str(tmp_path / "track")
    np.testing.assert_allclose(record["embedding"], expected[0], rtol=0, atol=1e-4)


def test_edge_runner_ranks_gallery_by_euclidean_distance(model, tmp_path, capsys):
    acan, export_dir = model
    gallery = write_images(tmp_path / "gallery")
    os.makedirs(tmp_path / "query")
    query = [shutil.copy(gallery[1], str(tmp_path / "query" / "copy_of_b.png"))]
    # Ranking alone: no threshold (the card's calibrated one would leave out the tiny model's far matches).
    assert onnx_infer.main(["--model", export_dir, "--gallery", str(tmp_path / "gallery"), "--top_k", "3",
                            "--threshold", "none", *query]) == 0
    (record,) = json_lines(capsys.readouterr().out)
    assert record["query"] == query[0]
    embeddings = reference_embeddings(acan, np.stack([training_pixels(path) for path in gallery]))
    distances = np.linalg.norm(embeddings - embeddings[1], axis=1)
    assert [match["item"] for match in record["matches"]] == [gallery[i] for i in np.argsort(distances)[:3]]
    assert record["matches"][0]["item"] == gallery[1] and record["matches"][0]["distance"] < 1e-5
    # Squared: float32 rounding of 2 - 2cos is ~1e-7, which sqrt would blow up to ~5e-4 at distance 0.
    np.testing.assert_allclose(np.square([m["distance"] for m in record["matches"]]), np.sort(distances)[:3] ** 2,
                               atol=1e-4)


def test_top_matches_are_the_nearest_by_euclidean_distance():
    rng = np.random.default_rng(3)
    gallery = matching.l2_normalize(rng.standard_normal((6, 256)).astype(np.float32))
    query = np.stack([gallery[4], matching.l2_normalize(rng.standard_normal(256).astype(np.float32))])
    indices, distances = matching.top_matches(query, gallery, 3)
    expected = np.linalg.norm(query[:, None].astype(np.float64) - gallery[None].astype(np.float64), axis=2)
    np.testing.assert_array_equal(indices, np.argsort(expected, axis=1)[:, :3])
    np.testing.assert_allclose(distances, np.sort(expected, axis=1)[:, :3], rtol=0, atol=1e-6)
    assert indices[0, 0] == 4 and distances[0, 0] < 1e-6  # an identical embedding is at distance 0


def test_edge_runner_reports_bad_input(model, tmp_path, capsys):
    os.makedirs(tmp_path / "empty")
    assert onnx_infer.main(["--model", model[1], str(tmp_path / "empty")]) == 2
    assert f"onnx_infer: error: {tmp_path / 'empty'}: no images" in capsys.readouterr().err
    assert onnx_infer.main(["--model", str(tmp_path), "x.png"]) == 2
    assert "expected model.onnx or the export folder holding it" in capsys.readouterr().err


def test_predict_request_body_follows_tf_serving_row_format():
    images = np.random.default_rng(2).integers(0, 256, (2, HEIGHT, WIDTH, 3), dtype=np.uint8)
    body = json.loads(json.dumps(client.predict_body(images)))
    assert set(body) == {"signature_name", "instances"}  # row format; never both "instances" and "inputs"
    assert body["signature_name"] == "serving_default"
    assert len(body["instances"]) == 2 and all(isinstance(v, int) for v in body["instances"][0][0][0])
    np.testing.assert_array_equal(np.array(body["instances"]), images)
    tracklet = client.predict_body(images[None], "embed_tracklets")
    assert tracklet["signature_name"] == "embed_tracklets"
    assert np.array(tracklet["instances"]).shape == (1, 2, HEIGHT, WIDTH, 3)
    assert client.model_url("http://host:8501/", "acan") == "http://host:8501/v1/models/acan"
    assert client.model_url("http://host:8501", "acan", 3) == "http://host:8501/v1/models/acan/versions/3"
    predictions = client.parse_predictions({"predictions": [[0.6, 0.8], [1.0, 0.0]]})
    assert predictions.dtype == np.float32
    np.testing.assert_array_equal(predictions, np.float32([[0.6, 0.8], [1.0, 0.0]]))
    with pytest.raises(RuntimeError, match="TF Serving: Servable not found"):
        client.parse_predictions({"error": "Servable not found for request"})


class FakeTFServing(http.server.BaseHTTPRequestHandler):
    """TF Serving's REST predict and metadata endpoints for one model, answered by its SavedModel."""

    model_name, version, loaded, metadata = "acan", "1", None, None

    def log_message(self, *args):
        pass

    def answer(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def endpoint(self, suffix):
        prefixes = (f"/v1/models/{self.model_name}", f"/v1/models/{self.model_name}/versions/{self.version}")
        return self.path in [prefix + suffix for prefix in prefixes]

    def do_GET(self):
        if self.endpoint("/metadata"):
            return self.answer(200, self.metadata)
        self.answer(404, {"error": f"Servable not found for request: {self.path}"})

    def do_POST(self):
        if not self.endpoint(":predict"):
            return self.answer(404, {"error": f"Servable not found for request: {self.path}"})
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if set(body) - {"signature_name", "instances", "inputs"} or ("instances" in body) == ("inputs" in body):
            return self.answer(400, {"error": "expected exactly one of 'instances' and 'inputs'"})
        signature = self.loaded.signatures[body.get("signature_name", "serving_default")]
        (name,) = signature.structured_input_signature[1]
        outputs = signature(**{name: tf.constant(np.array(body["instances"], np.uint8))})
        self.answer(200, {"predictions": outputs["embeddings"].numpy().tolist()})


@pytest.fixture
def server(model):
    export_dir = model[1]
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    signatures = {name: json_format.MessageToDict(value, preserving_proto_field_name=True)
                  for name, value in saved_model.meta_graphs[0].signature_def.items()}
    handler = type("Handler", (FakeTFServing,), {
        "loaded": tf.saved_model.load(export_dir),
        "metadata": {"model_spec": {"name": "acan", "signature_name": "", "version": "1"},
                     "metadata": {"signature_def": {"@type": "type.googleapis.com/tensorflow.serving.SignatureDefMap",
                                                    "signature_def": signatures}}},
    })
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.metadata
    httpd.shutdown()
    httpd.server_close()


def test_input_size_is_read_from_model_metadata(server):
    assert client.input_size(server[1]) == (HEIGHT, WIDTH)
    with pytest.raises(RuntimeError, match="no serving_default 'images' input"):
        client.input_size({"metadata": {}})


def test_rest_client_gets_the_models_embeddings_and_matches(model, server, tmp_path, capsys):
    acan, url = model[0], server[0]
    paths = write_images(tmp_path / "images")
    assert client.main(["--server", url, "--model_name", "acan", "--batch_size", "3", str(tmp_path / "images")]) == 0
    records = json_lines(capsys.readouterr().out)
    assert [record["item"] for record in records] == paths
    embeddings = reference_embeddings(acan, np.stack([training_pixels(path) for path in paths]))
    np.testing.assert_allclose([record["embedding"] for record in records], embeddings, rtol=0, atol=1e-5)

    os.makedirs(tmp_path / "tracks")
    os.rename(tmp_path / "images", tmp_path / "tracks" / "one")
    argv = ["--server", url, "--model_name", "acan", "--version", "1", "--tracklets"]
    assert client.main([*argv, str(tmp_path / "tracks" / "one")]) == 0
    (record,) = json_lines(capsys.readouterr().out)
    tracklet = reference_embeddings(acan, np.stack([training_pixels(path) for path in sorted(
        os.path.join(tmp_path, "tracks", "one", name) for name in IMAGES)])[None])
    np.testing.assert_allclose(record["embedding"], tracklet[0], rtol=0, atol=1e-5)

    assert client.main([*argv, "--gallery", str(tmp_path / "tracks"), str(tmp_path / "tracks" / "one")]) == 0
    (record,) = json_lines(capsys.readouterr().out)
    assert record["matches"][0]["item"] == str(tmp_path / "tracks" / "one") and record["matches"][0]["distance"] < 1e-3


def test_rest_client_reports_server_errors(server, tmp_path, capsys):
    paths = write_images(tmp_path, {"a.png": IMAGES["a.png"]})
    assert client.main(["--server", server[0], "--model_name", "other", "--height", "32", "--width", "16", *paths]) == 2
    error = capsys.readouterr().err
    assert error.startswith("client: error: ") and "HTTP 404" in error and "Servable not found" in error


def statistics_of(export_dir):
    return CameraStatistics.load(os.path.join(export_dir, STATISTICS_FILE))


def foreign_statistics(export_dir, path, probe_shift=0.5):
    """The export's statistics as if of another model: another hash, probe embeddings moved by `probe_shift`."""
    statistics = statistics_of(export_dir)
    document = statistics.to_json()
    document.update(model_hash="0123456789abcdef", probe=(np.asarray(statistics.probe) + probe_shift).tolist())
    with open(path, "w") as handle:
        json.dump(document, handle)
    return str(path)


def test_edge_runner_normalises_each_cameras_embeddings_with_its_statistics(model, tmp_path, capsys):
    acan, export_dir = model
    statistics = statistics_of(export_dir)
    paths = write_images(tmp_path / "images")
    assert onnx_infer.main(["--model", export_dir, "--camera", "c2", str(tmp_path / "images")]) == 0
    records = json_lines(capsys.readouterr().out)
    embeddings = reference_embeddings(acan, np.stack([training_pixels(path) for path in paths]))
    np.testing.assert_allclose([record["embedding"] for record in records],
                               statistics.apply(embeddings, ["c2"] * len(paths)), rtol=0, atol=1e-4)

    # Query of camera c1 against a gallery of camera c3: each side centred on its own camera's mean.
    argv = ["--model", export_dir, "--camera", "c1", "--gallery", str(tmp_path / "images"), "--gallery_camera", "c3",
            "--top_k", "4", "--threshold", "none", paths[0]]
    assert onnx_infer.main(argv) == 0
    (record,) = json_lines(capsys.readouterr().out)
    query, gallery = statistics.apply(embeddings[:1], ["c1"]), statistics.apply(embeddings, ["c3"] * len(paths))
    distances = np.linalg.norm(gallery - query, axis=1)
    assert [match["item"] for match in record["matches"]] == [paths[i] for i in np.argsort(distances)]
    np.testing.assert_allclose([m["distance"] for m in record["matches"]], np.sort(distances), atol=1e-3)


def test_edge_runner_falls_back_to_the_global_statistics_for_a_new_camera(model, tmp_path, capsys):
    acan, export_dir = model
    paths = write_images(tmp_path / "images")
    assert onnx_infer.main(["--model", export_dir, "--camera", "lobby", "--gallery", str(tmp_path / "images"),
                            "--gallery_camera", "lobby", "--threshold", "none", paths[0]]) == 0
    captured = capsys.readouterr()
    notes = [line for line in captured.err.splitlines() if "no statistics for camera lobby" in line]
    assert len(notes) == 1 and "(it has c1, c2, c3)" in notes[0] and "global mean" in notes[0]
    embeddings = reference_embeddings(acan, np.stack([training_pixels(path) for path in paths]))
    expected = statistics_of(export_dir).apply(embeddings, ["lobby"] * len(paths))
    (record,) = json_lines(captured.out)
    assert record["matches"][0]["item"] == paths[0]
    np.testing.assert_allclose(record["matches"][1]["distance"],
                               np.sort(np.linalg.norm(expected - expected[0], axis=1))[1], atol=1e-3)


def test_edge_runner_refuses_statistics_of_another_model(model, tmp_path, capsys):
    export_dir = model[1]
    write_images(tmp_path / "images")
    foreign = foreign_statistics(export_dir, tmp_path / "foreign.json")
    model_hash = json.load(open(os.path.join(export_dir, "model.json")))["model_hash"]
    argv = ["--model", export_dir, "--camera", "c1", str(tmp_path / "images")]
    assert onnx_infer.main([*argv, "--camera_stats", foreign]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"onnx_infer: error: {foreign}: statistics of the model with model_hash 0123456789abcdef")
    assert f"model_hash {model_hash}" in error
    # A model file without its model.json beside it: the probe images tell the models apart.
    os.makedirs(tmp_path / "bare")
    bare = shutil.copy(os.path.join(export_dir, "model.onnx"), str(tmp_path / "bare"))
    argv = ["--model", bare, "--camera", "c1", str(tmp_path / "images")]
    assert onnx_infer.main([*argv, "--camera_stats", foreign]) == 2
    assert "its embeddings of the probe images differ by" in capsys.readouterr().err
    assert onnx_infer.main([*argv, "--camera_stats", os.path.join(export_dir, STATISTICS_FILE)]) == 0
    (tmp_path / "broken.json").write_text('{"kind": "acan_tf.camera_statistics", "format_version": 2}')
    assert onnx_infer.main([*argv, "--camera_stats", str(tmp_path / "broken.json")]) == 2
    assert "expected a camera statistics file written by acan_tf" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        onnx_infer.parse_args(["--model", bare, "--camera", "c1", "--gallery", "g", "q.png"])
    assert "needs --gallery_camera" in capsys.readouterr().err


def test_edge_runner_normalises_without_tensorflow(model, tmp_path):
    export_dir = model[1]
    write_images(tmp_path / "images")
    blocked = ("import runpy, sys; sys.modules.update(tensorflow=None, keras=None, acan_tf=None); "
               f"sys.path.insert(0, {KIT!r}); sys.argv = ['onnx_infer.py'] + sys.argv[1:]; "
               f"runpy.run_path({os.path.join(KIT, 'onnx_infer.py')!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", blocked, "--model", export_dir, "--camera", "c1",
                             str(tmp_path / "images")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(json_lines(result.stdout)) == len(IMAGES)


def test_rest_client_normalises_and_checks_the_served_model_on_the_probe(model, server, tmp_path, capsys):
    acan, export_dir = model
    url = server[0]
    paths = write_images(tmp_path / "images")
    statistics_file = os.path.join(export_dir, STATISTICS_FILE)
    argv = ["--server", url, "--model_name", "acan", "--camera", "c3", str(tmp_path / "images")]
    assert client.main([*argv, "--camera_stats", statistics_file]) == 0
    records = json_lines(capsys.readouterr().out)
    embeddings = reference_embeddings(acan, np.stack([training_pixels(path) for path in paths]))
    np.testing.assert_allclose([record["embedding"] for record in records],
                               statistics_of(export_dir).apply(embeddings, ["c3"] * len(paths)), rtol=0, atol=1e-5)
    assert client.main([*argv, "--camera_stats", foreign_statistics(export_dir, tmp_path / "foreign.json")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("client: error: ") and "model_hash 0123456789abcdef, not of the served model" in error
    assert "probe images differ by 0.500" in error

