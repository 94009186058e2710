"""Reads a PyTorch checkpoint (a state dict of tensors) into NumPy arrays without torch, refusing arbitrary pickles.

Two layouts exist. The legacy one (torch < 1.6, or `_use_new_zipfile_serialization=False`; the layout of
`efficientnet-lite0-57934424.pth`) is five pickles written one after another, then the raw storages:
(1) the magic number 0x1950a86a20f9469cfc6c, (2) the protocol version 1001, (3) a dict of system information
(`little_endian`, `type_sizes`), (4) the object itself, (5) the list of storage keys in file order; then, per key
in that order, an int64 element count followed by that many elements, little-endian. The zip layout (torch >= 1.6)
is a zip archive holding `<root>/data.pkl` (the object) and each storage's raw bytes in `<root>/data/<key>`.

In the object, a tensor is a call `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
requires_grad, backward_hooks)` (parameters are additionally wrapped in `torch._utils._rebuild_parameter`), and a
storage is a pickle *persistent id* `('storage', torch.FloatStorage, key, location, numel[, view_metadata])`.
A tensor is rebuilt as the strided view of its storage (offset, size and stride counted in elements), copied.
Unpickling resolves only OrderedDict, those two rebuild functions and the storage type names; anything else (a
pickle that calls os.system, say) is refused before it runs.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, Callable

import numpy as np

from acan_tf.errors import UserError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch storage type name → NumPy dtype; both layouts store little-endian elements.
STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class TorchCheckpointError(UserError, ValueError):
    """A file that is not a readable PyTorch state dict; the message names the file."""


@dataclasses.dataclass(frozen=True)
class _StorageType:
    """Stands in for `torch.FloatStorage` etc. inside the pickle: only its element type matters."""

    dtype: np.dtype


@dataclasses.dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int


@dataclasses.dataclass(frozen=True)
class _TensorRef:
    """A tensor whose storage may not be read yet (in the legacy layout the storages follow the object)."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    del requires_grad, backward_hooks, metadata
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError(f"a tensor whose storage is {type(storage).__name__}")
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    del requires_grad, backward_hooks
    return data


ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(np.dtype(dtype)) for name, dtype in STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names in ALLOWED; storages become _StorageRef, each of which `record(key, ref)` sees."""

    def __init__(self, handle: BinaryIO, record: Callable[[str, _StorageRef], _StorageRef]):
        super().__init__(handle)
        self._record = record

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a PyTorch state dict")
        return ALLOWED[(module, name)]

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (legacy view_metadata) are not supported")
        ref = _StorageRef(str(pid[2]), pid[1].dtype, int(pid[4]))
        return self._record(ref.key, ref)


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch state dict file (legacy or zip layout) as NumPy arrays, by parameter name."""
    try:
        obj, storages = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
        state = {name: _tensor(ref, storages) for name, ref in _as_state_dict(obj).items()}
    except OSError as error:
        raise TorchCheckpointError(f"{path}: cannot read the file ({error})") from error
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            struct.error, zipfile.BadZipFile) as error:
        raise TorchCheckpointError(f"{path}: not a readable PyTorch state dict ({error})") from error
    return state


def _as_state_dict(obj: Any) -> dict[str, _TensorRef]:
    if not isinstance(obj, dict) or not all(isinstance(v, _TensorRef) for v in obj.values()):
        raise TypeError(f"expected a state dict (names → tensors), found {type(obj).__name__}")
    return obj


def _tensor(ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    storage = storages[ref.storage.key]
    if len(ref.size) != len(ref.stride):
        raise ValueError(f"tensor size {ref.size} and stride {ref.stride} differ in rank")
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride)) if all(ref.size) else ref.offset - 1
    if ref.offset < 0 or min(ref.stride, default=0) < 0 or last >= storage.size:
        raise ValueError(f"tensor of size {ref.size}, stride {ref.stride} at offset {ref.offset} does not fit "
                         f"its storage of {storage.size} elements")
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset:], shape=ref.size, strides=[s * storage.itemsize for s in ref.stride], writeable=False
    )
    return np.array(view)


def _load_legacy(path: str) -> tuple[Any, dict[str, np.ndarray]]:
    with open(path, "rb") as handle:
        if _unpickle(handle) != LEGACY_MAGIC:
            raise ValueError("wrong magic number: not a PyTorch checkpoint")
        if _unpickle(handle) != LEGACY_PROTOCOL:
            raise ValueError("unsupported legacy protocol version")
        system = _unpickle(handle)
        if not isinstance(system, dict) or system.get("little_endian") is not True:
            raise ValueError("only little-endian checkpoints are supported")
        refs: dict[str, _StorageRef] = {}
        obj = _unpickle(handle, refs.setdefault)
        storages = {}
        for key in _unpickle(handle):
            ref = refs[key]
            (count,) = struct.unpack("<q", _read_exactly(handle, 8))
            if count != ref.numel:
                raise ValueError(f"storage {key}: {count} elements where the object says {ref.numel}")
            storages[key] = np.frombuffer(_read_exactly(handle, count * ref.dtype.itemsize), dtype=ref.dtype)
    return obj, storages


def _unpickle(handle: BinaryIO, record: Callable[[str, _StorageRef], _StorageRef] | None = None) -> Any:
    """One pickle from `handle`; `record(key, ref)` sees each storage it references (none by default)."""
    return _RestrictedUnpickler(handle, record or _no_storage).load()


def _no_storage(key: str, ref: _StorageRef) -> _StorageRef:
    raise pickle.UnpicklingError(f"a storage reference ({key}) outside the checkpoint's object")


def _read_exactly(handle: BinaryIO, count: int) -> bytes:
    data = handle.read(count)
    if len(data) != count:
        raise EOFError(f"truncated: {count} more bytes expected, {len(data)} found")
    return data


def _load_zip(path: str) -> tuple[Any, dict[str, np.ndarray]]:
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError("a zip file without a single <root>/data.pkl: not a PyTorch checkpoint")
        root = pickles[0][: -len("data.pkl")]
        refs: dict[str, _StorageRef] = {}
        obj = _unpickle(io.BytesIO(archive.read(pickles[0])), refs.setdefault)
        storages = {}
        for key, ref in refs.items():
            data = archive.read(f"{root}data/{key}")
            if len(data) != ref.numel * ref.dtype.itemsize:
                raise ValueError(f"storage {key}: {len(data)} bytes for {ref.numel} elements of {ref.dtype}")
            storages[key] = np.frombuffer(data, dtype=ref.dtype)
    return obj, storages
