"""Read PyTorch ``torch.save`` files without torch.

Two on-disk layouts exist:

* the *legacy* format (torch < 1.6 and ``_use_new_zipfile_serialization=False``): a
  magic-number pickle, a protocol-version pickle, a sys-info pickle, the object pickle
  (tensors refer to storages through persistent ids), a pickle listing the storage keys,
  then for each key an int64 element count followed by the raw little-endian bytes;
* the *zip* format (torch >= 1.6): ``<root>/data.pkl`` holds the object pickle, and each
  storage lives raw in ``<root>/data/<key>``.

Only what a state dict needs is understood: tensors (``_rebuild_tensor_v2``,
``_rebuild_parameter``), ``OrderedDict`` and plain containers.  Any other global in the
pickle is refused, so a ``.pth`` cannot run code on load.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from typing import Any, BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class TorchFormatError(ValueError):
    """The file is not a readable ``torch.save`` state dict."""


class _StorageRef:
    """A storage named by a persistent id; its bytes are attached later."""

    def __init__(self, dtype, key: str, numel: int):
        self.dtype = np.dtype(dtype)
        self.key = key
        self.numel = numel
        self.array: np.ndarray | None = None


class _PendingTensor:
    """A tensor view of a storage, materialised once the storages are read."""

    def __init__(self, storage: _StorageRef, offset: int, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(size), tuple(stride)

    def materialise(self) -> np.ndarray:
        base = self.storage.array
        if base is None:
            raise TorchFormatError(f"storage {self.storage.key} has no data")
        if (len(self.size) != len(self.stride) or self.offset < 0
                or any(n < 0 for n in self.size) or any(s < 0 for s in self.stride)):
            raise TorchFormatError(f"malformed tensor (size {self.size}, stride {self.stride}, "
                                   f"offset {self.offset})")  # negative strides would read outside
        if not self.size:
            return np.array(base[self.offset])
        if 0 in self.size:
            return np.zeros(self.size, base.dtype)
        need = self.offset + 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if need > base.size:
            raise TorchFormatError(
                f"tensor of shape {self.size} runs past its storage ({base.size} elements)")
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=[s * item for s in self.stride])
        return np.array(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored):
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_ignored):
    return data


_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _PlainUnpickler(pickle.Unpickler):
    """For the legacy headers and storage-key list: plain data only, no globals at all."""

    def find_class(self, module, name):
        raise TorchFormatError(f"refusing unexpected object {module}.{name} in a weights file")


def _load_plain(f: BinaryIO) -> Any:
    return _PlainUnpickler(f).load()


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, storages: dict[str, _StorageRef]):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) in _GLOBALS:
            return _GLOBALS[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        raise TorchFormatError(f"refusing unexpected object {module}.{name} in a weights file")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise TorchFormatError(f"unexpected persistent id {pid!r}")
        _, dtype, key, _location, numel = pid[:5]
        if not isinstance(dtype, type):
            raise TorchFormatError(f"unsupported storage type {dtype!r}")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _StorageRef(dtype, key, int(numel))
        return self.storages[key]


def _finish(obj: Any) -> Any:
    if isinstance(obj, _PendingTensor):
        return obj.materialise()
    if isinstance(obj, dict):
        return type(obj)((k, _finish(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_finish(v) for v in obj)
    return obj


def _load_legacy(f: BinaryIO) -> Any:
    magic = _load_plain(f)
    if magic != LEGACY_MAGIC:
        raise TorchFormatError("not a torch.save file (bad magic number)")
    if _load_plain(f) != LEGACY_PROTOCOL:
        raise TorchFormatError("unsupported torch.save protocol version")
    sys_info = _load_plain(f)
    if not sys_info.get("little_endian", True):
        raise TorchFormatError("big-endian torch files are not supported")
    storages: dict[str, _StorageRef] = {}
    obj = _Unpickler(f, storages).load()
    keys = _load_plain(f)
    for key in keys:
        ref = storages.get(str(key))
        if ref is None:
            raise TorchFormatError(f"storage {key} is listed but never used")
        header = f.read(8)
        if len(header) != 8:
            raise TorchFormatError("file is truncated (storage header missing)")
        (numel,) = struct.unpack("<q", header)
        if numel != ref.numel:
            raise TorchFormatError(f"storage {key}: {numel} elements on disk, {ref.numel} expected")
        nbytes = numel * ref.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise TorchFormatError(
                f"file is truncated (storage {key} has {len(raw)} of {nbytes} bytes)")
        ref.array = np.frombuffer(raw, dtype=ref.dtype.newbyteorder("<")).astype(ref.dtype)
    if f.read(1):
        raise TorchFormatError("unexpected trailing bytes after the last storage")
    return _finish(obj)


def _load_zip(zf: zipfile.ZipFile) -> Any:
    names = zf.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if not pkl:
        raise TorchFormatError("zip file without data.pkl is not a torch.save file")
    root = pkl[0][: -len("data.pkl")]
    storages: dict[str, _StorageRef] = {}
    obj = _Unpickler(io.BytesIO(zf.read(pkl[0])), storages).load()
    for key, ref in storages.items():
        try:
            raw = zf.read(f"{root}data/{key}")
        except KeyError as e:
            raise TorchFormatError(f"storage {key} is missing from the archive") from e
        nbytes = ref.numel * ref.dtype.itemsize
        if len(raw) < nbytes:
            raise TorchFormatError(f"storage {key} is truncated")
        ref.array = np.frombuffer(raw[:nbytes], dtype=ref.dtype.newbyteorder("<")).astype(ref.dtype)
    return _finish(obj)


def load_torch_file(path) -> Any:
    """Load a ``torch.save`` file (legacy or zip layout) into NumPy arrays.

    Args:
      path: file path.

    Returns:
      The saved object, with every tensor replaced by a ``numpy.ndarray``.

    Raises:
      TorchFormatError: the file is truncated, altered or not a torch file.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return _load_zip(zf)
        with open(path, "rb") as f:  # in memory: a corrupt length then reads short, not huge
            data = f.read()
        if data.startswith(b"PK\x03\x04"):
            raise TorchFormatError("truncated or damaged zip archive (torch.save zip layout)")
        return _load_legacy(io.BytesIO(data))
    except TorchFormatError:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError,
            AttributeError, IndexError, KeyError, struct.error, UnicodeDecodeError,
            # a corrupt length or offset: huge allocations, bad seeks, unknown compression
            OverflowError, MemoryError, OSError, NotImplementedError) as e:
        reason = " ".join(str(e).split())  # one line: pickle's own messages span two
        raise TorchFormatError(f"not a readable torch.save file ({type(e).__name__}: {reason})"
                               ) from e
