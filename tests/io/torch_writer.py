"""Write ``torch.save`` files without torch (a test helper for ``nstjax.io.torch_format``).

Both layouts that ``torch.save`` has used are produced:

* :func:`save_legacy` (torch < 1.6, ``_use_new_zipfile_serialization=False``): a pickle of
  the magic number, one of the protocol version, one of the sys-info dict, the object pickle
  (protocol 2) whose tensors refer to storages by persistent id
  ``('storage', torch.<Type>Storage, key, 'cpu', numel, None)``, a pickle of the sorted
  storage keys, then per key an int64 element count and the raw little-endian bytes;
* :func:`save_zip` (torch >= 1.6): ``archive/data.pkl`` (same object pickle, persistent id
  ``('storage', torch.<Type>Storage, key, 'cpu', numel)``), ``archive/data/<key>`` raw
  bytes, ``archive/byteorder`` and ``archive/version`` (``"3\\n"``).

A tensor pickles as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
False, OrderedDict())``, exactly as torch writes it.  torch is not needed: the pickler is
the pure-Python one with ``save_global`` taught to emit ``GLOBAL torch._utils
_rebuild_tensor_v2`` and ``GLOBAL torch FloatStorage`` (etc.) for local stand-ins, so no
fake ``torch`` module is ever put into ``sys.modules``.

Values may be ``numpy.ndarray`` (each gets its own contiguous storage), :class:`View`
(a strided view into a storage shared with other views) or :class:`Parameter`, nested in
dicts, ``OrderedDict``, lists and tuples.
"""

from __future__ import annotations

import collections
import io
import pickle
import pickletools
import struct
import types
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
SYS_INFO = {"protocol_version": LEGACY_PROTOCOL, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}

_STORAGE_NAMES = {
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.int16): "ShortStorage",
    np.dtype(np.int8): "CharStorage",
    np.dtype(np.uint8): "ByteStorage",
    np.dtype(np.bool_): "BoolStorage",
}


# Stand-ins for torch's globals; they are only ever pickled by reference, never called.
def _rebuild_tensor_v2(*args):  # pragma: no cover
    raise AssertionError("stand-in for torch._utils._rebuild_tensor_v2")


def _rebuild_parameter(*args):  # pragma: no cover
    raise AssertionError("stand-in for torch._utils._rebuild_parameter")


_STORAGE_TYPES = {dt: type(name, (), {}) for dt, name in _STORAGE_NAMES.items()}
_GLOBAL_NAMES = {_rebuild_tensor_v2: ("torch._utils", "_rebuild_tensor_v2"),
                 _rebuild_parameter: ("torch._utils", "_rebuild_parameter")}
_GLOBAL_NAMES.update({cls: ("torch", _STORAGE_NAMES[dt]) for dt, cls in _STORAGE_TYPES.items()})

# Called only if a reader executes arbitrary globals from a file (see the safety tests).
CALLS: list = []


def record_call(*args):
    """A global a hostile file may name: records that it ran and returns the legacy magic."""
    CALLS.append(args)
    return LEGACY_MAGIC


class View:
    """A tensor viewing ``base`` (1-D array, shared by identity) at an element offset/stride."""

    def __init__(self, base: np.ndarray, offset: int, size, stride):
        if base.ndim != 1:
            raise ValueError("a storage is one-dimensional")
        self.base, self.offset = base, int(offset)
        self.size, self.stride = tuple(int(n) for n in size), tuple(int(s) for s in stride)


class Parameter:
    """An ``nn.Parameter``: pickles as ``_rebuild_parameter(tensor, requires_grad, hooks)``."""

    def __init__(self, data):
        self.data = data


class _Storage:
    def __init__(self, array: np.ndarray, key: str):
        if array.dtype not in _STORAGE_NAMES:
            raise TypeError(f"no torch storage type for {array.dtype}")
        self.array, self.key = array, key


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (_rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride,
                                     False, collections.OrderedDict()))


class _Param:
    def __init__(self, tensor: _Tensor):
        self.tensor = tensor

    def __reduce__(self):
        return (_rebuild_parameter, (self.tensor, False, collections.OrderedDict()))


def _contiguous_strides(shape) -> tuple:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


class _Converter:
    """Replaces arrays, views and parameters by picklable tensor stand-ins, numbering storages."""

    def __init__(self):
        self.storages: dict[int, _Storage] = {}  # id(base array) -> storage

    def storage(self, base: np.ndarray) -> _Storage:
        if id(base) not in self.storages:
            self.storages[id(base)] = _Storage(base, str(len(self.storages)))
        return self.storages[id(base)]

    def __call__(self, obj):
        if isinstance(obj, np.ndarray):
            flat = np.ascontiguousarray(obj).reshape(-1)
            return _Tensor(self.storage(flat), 0, tuple(obj.shape), _contiguous_strides(obj.shape))
        if isinstance(obj, View):
            return _Tensor(self.storage(obj.base), obj.offset, obj.size, obj.stride)
        if isinstance(obj, Parameter):
            return _Param(self(obj.data))
        if isinstance(obj, dict):
            return type(obj)((k, self(v)) for k, v in obj.items())
        if isinstance(obj, (list, tuple)):
            return type(obj)(self(v) for v in obj)
        return obj


class _Pickler(pickle._Pickler):  # the pure-Python pickler, so save_global can be overridden
    def __init__(self, file, *, legacy: bool):
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            pid = ("storage", _STORAGE_TYPES[obj.array.dtype], obj.key, "cpu", obj.array.size)
            return pid + (None,) if self.legacy else pid  # legacy adds view_metadata
        return None

    def save_global(self, obj, name=None):
        spec = _GLOBAL_NAMES.get(obj)
        if spec is None:
            return super().save_global(obj, name)
        module, qualname = spec
        self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode("ascii"))
        self.memoize(obj)

    # The base class dispatches functions to its own save_global; route them to ours.
    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[types.FunctionType] = save_global


def _object_pickle(obj, *, legacy: bool) -> tuple[bytes, list[_Storage]]:
    conv = _Converter()
    tree = conv(obj)
    buf = io.BytesIO()
    _Pickler(buf, legacy=legacy).dump(tree)
    return buf.getvalue(), list(conv.storages.values())


def _le_bytes(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def legacy_bytes(obj) -> bytes:
    """The bytes ``torch.save(obj, f, _use_new_zipfile_serialization=False)`` would write."""
    data, storages = _object_pickle(obj, legacy=True)
    out = io.BytesIO()
    for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, SYS_INFO):
        pickle.dump(header, out, protocol=2)
    out.write(data)
    keys = sorted(s.key for s in storages)
    pickle.dump(keys, out, protocol=2)
    by_key = {s.key: s for s in storages}
    for key in keys:
        array = by_key[key].array
        out.write(struct.pack("<q", array.size))
        out.write(_le_bytes(array))
    return out.getvalue()


def save_legacy(path, obj) -> None:
    """Write ``obj`` in torch's legacy (pre-1.6) ``torch.save`` layout."""
    with open(path, "wb") as f:
        f.write(legacy_bytes(obj))


def save_zip(path, obj, *, root: str = "archive") -> None:
    """Write ``obj`` in torch's zip ``torch.save`` layout (torch >= 1.6)."""
    data, storages = _object_pickle(obj, legacy=False)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{root}/data.pkl", data)
        zf.writestr(f"{root}/byteorder", "little")
        for s in storages:
            zf.writestr(f"{root}/data/{s.key}", _le_bytes(s.array))
        zf.writestr(f"{root}/version", "3\n")


def object_pickle_span(blob: bytes) -> tuple[int, int]:
    """``(start, end)`` of the object pickle inside legacy bytes (for byte-alteration tests)."""
    f = io.BytesIO(blob)
    for _ in range(3):
        pickle.load(f)  # our own headers: magic, protocol, sys info
    start = f.tell()
    ops = pickletools.genops(f)
    end = start
    for op, _arg, pos in ops:
        if op.name == "STOP":
            end = pos + 1
            break
    return start, end
