"""model.json, the model card written beside each export: what goes in, what comes out, where it came from."""

from __future__ import annotations

import datetime

import onnx
import onnxruntime
import tf2onnx

from acan_tf.config import Config
from acan_tf.deploy import serving
from acan_tf.evaluation.camera_norm import SPACE, STATISTICS_FILE, CameraStatistics
from acan_tf.model.backbones import NORMALISATIONS, get_spec
from acan_tf.model.identity import MODEL_HASH
from acan_tf.versions import package_versions

MODEL_CARD = "model.json"
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model_int8.onnx"


def model_card(
    config: Config,
    run_info: dict,
    final_metrics: dict | None,
    embedding_size: int,
    export: dict,
    parity: dict[str, float],
    model_hash: str,
    camera_statistics: CameraStatistics | None = None,
) -> dict:
    """The model card of one export; `export` describes it (name, version, formats, checkpoint, run_dir, opset...).

    `model_hash` names the model (acan_tf.model.identity); `camera_statistics`, written beside it, are summarised.
    """
    height, width = config.image_height, config.image_width
    style = get_spec(config.backbone).normalisation
    files = {}
    if "saved_model" in export["formats"]:
        files["saved_model"] = {
            "path": ".",
            "signatures": {
                serving.IMAGE_SIGNATURE: {"input": serving.IMAGES, "shape": [None, height, width, 3],
                                          "output": serving.EMBEDDINGS},
                serving.TRACKLET_SIGNATURE: {"input": serving.TRACKLETS, "shape": [None, None, height, width, 3],
                                             "output": serving.EMBEDDINGS},
            },
        }
    onnx_outputs = {serving.EMBEDDINGS: "L2-normalised, as serving_default",
                    serving.FEATURES: "F(x) before normalisation; a tracklet's embedding is the L2-normalised mean "
                                      "of its frames' features"}
    if "onnx" in export["formats"]:
        files["onnx"] = {"path": ONNX_FILE, "opset": export["opset"], "input": serving.IMAGES, "outputs": onnx_outputs}
    if "onnx_int8" in export["formats"]:
        files["onnx_int8"] = {"path": ONNX_INT8_FILE, "opset": export["opset"], "input": serving.IMAGES,
                              "outputs": onnx_outputs, "quantization": export["quantization"]}
    return {
        "name": export["model_name"],
        "version": export["version"],
        "formats": files,
        "input": {
            "name": serving.IMAGES,
            "dtype": "uint8",
            "shape": [None, height, width, 3],
            "height": height,
            "width": width,
            "channels": "RGB",
            "resize": f"clients resize every image to {height}x{width} (height x width) before sending it: bilinear, "
                      f"half-pixel centres, no antialiasing (tf.image.resize's default, as in training), "
                      f"rounded to uint8",
        },
        "normalisation": {"style": style, **NORMALISATIONS[style], "in_graph": True},
        "output": {"name": serving.EMBEDDINGS, "dtype": "float32", "shape": [None, embedding_size],
                   "l2_normalised": True},
        "embedding_size": embedding_size,
        MODEL_HASH: model_hash,
        "camera_statistics": None if camera_statistics is None else {
            "path": STATISTICS_FILE,
            MODEL_HASH: camera_statistics.model_hash,
            "cameras": {name: camera_statistics.counts[name] for name in camera_statistics.cameras},
            "source": camera_statistics.source,
            "applied": SPACE,
        },
        "backbone": config.backbone,
        "dataset": run_info.get("dataset", config.dataset),
        "scheme": config.scheme,
        "adv_weight": config.adv_weight,
        "checkpoint": export["checkpoint"],
        "run_dir": export["run_dir"],
        "metrics": final_metrics,
        "versions": package_versions(tf2onnx, onnx, onnxruntime),
        "training_versions": run_info.get("versions"),
        "parity": parity,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
