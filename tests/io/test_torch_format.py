"""Tests of the torch.save reader (nstjax.io.torch_format) against the writer in
tests/io/torch_writer.py: both layouts round-trip, malformed or hostile files are refused
as format errors, and no pickle can name a global outside the tensor rebuilders."""

from __future__ import annotations

import collections
import io
import pickle
import pickletools
import struct
import zipfile

import numpy as np
import pytest
import torch_writer as T

from nstjax.io import torch_format as F

# ----------------------------------------------------------------------------- torch writer

def _tiny_torch_object():
    base = np.arange(24, dtype=np.float32)
    return collections.OrderedDict([
        ("f64", np.arange(6, dtype=np.float64).reshape(2, 3) / 7),
        ("u8", np.array([[0, 255], [7, 128]], np.uint8)),
        ("i64", np.array([-(2 ** 40), 3], np.int64)),
        ("f16", np.array([0.5, -2.0], np.float16)),
        ("bool", np.array([True, False, True])),
        ("scalar", np.array(3.25, np.float32)),
        ("empty", np.zeros((0, 3), np.float32)),
        ("transposed", T.View(base, 2, (4, 3), (1, 4))),  # shares `base` with "window"
        ("window", T.View(base, 5, (2, 2), (6, 1))),
        ("param", T.Parameter(np.full((2, 2), 1.5, np.float32))),
        ("nested", {"list": [np.ones(3, np.int32)], "n": 4}),
    ])


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_torch_writer_round_trips_through_reader(tmp_path, layout):
    path = tmp_path / "t.pth"
    (T.save_legacy if layout == "legacy" else T.save_zip)(path, _tiny_torch_object())
    got = F.load_torch_file(path)
    base = np.arange(24, dtype=np.float32)
    expected = {
        "f64": np.arange(6, dtype=np.float64).reshape(2, 3) / 7,
        "u8": np.array([[0, 255], [7, 128]], np.uint8),
        "i64": np.array([-(2 ** 40), 3], np.int64),
        "f16": np.array([0.5, -2.0], np.float16),
        "bool": np.array([True, False, True]),
        "scalar": np.array(3.25, np.float32),
        "empty": np.zeros((0, 3), np.float32),
        "transposed": base[2:14].reshape(3, 4).T,
        "window": np.array([[5, 6], [11, 12]], np.float32),
        "param": np.full((2, 2), 1.5, np.float32),
    }
    assert type(got) is collections.OrderedDict and list(got) == list(_tiny_torch_object())
    for key, want in expected.items():
        assert got[key].dtype == want.dtype and got[key].shape == want.shape, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)
    np.testing.assert_array_equal(got["nested"]["list"][0], np.ones(3, np.int32))
    assert got["nested"]["n"] == 4


def test_torch_writer_emits_torchs_own_globals_and_layout(tmp_path):
    """The files are what torch writes, not merely what our reader accepts."""
    blob = T.legacy_bytes({"w": np.zeros(2, np.float32), "c": np.zeros(1, np.uint8)})
    f = io.BytesIO(blob)
    assert pickle.load(f) == 0x1950A86A20F9469CFC6C
    assert pickle.load(f) == 1001
    assert pickle.load(f) == {"protocol_version": 1001, "little_endian": True,
                              "type_sizes": {"short": 2, "int": 4, "long": 4}}
    start, end = T.object_pickle_span(blob)
    globals_ = {arg for op, arg, _ in pickletools.genops(blob[start:end]) if op.name == "GLOBAL"}
    assert globals_ == {"torch._utils _rebuild_tensor_v2", "torch FloatStorage",
                        "torch ByteStorage", "collections OrderedDict"}
    rest = io.BytesIO(blob[end:])
    assert pickle.load(rest) == ["0", "1"]
    assert struct.unpack("<q", rest.read(8)) == (2,)
    path = tmp_path / "z.pth"
    T.save_zip(path, {"w": np.zeros(2, np.float32)})
    with zipfile.ZipFile(path) as zf:
        assert set(zf.namelist()) == {"archive/data.pkl", "archive/byteorder",
                                      "archive/data/0", "archive/version"}
        assert zf.read("archive/version") == b"3\n"
        assert zf.read("archive/data/0") == np.zeros(2, "<f4").tobytes()


def test_zip_reader_finds_any_archive_root(tmp_path):
    path = tmp_path / "z.pth"
    T.save_zip(path, {"w": np.arange(3, dtype=np.float32)}, root="vgg19-dcbb9e9d")
    np.testing.assert_array_equal(F.load_torch_file(path)["w"], np.arange(3, dtype=np.float32))


@pytest.mark.parametrize("size,stride,offset", [((3,), (-1,), 2), ((2, -1), (1, 1), 0),
                                                ((3,), (1,), -1)])
def test_torch_reader_rejects_malformed_views(tmp_path, size, stride, offset):
    """Negative strides or offsets would read outside the storage; they are refused."""
    path = tmp_path / "bad.pth"
    T.save_legacy(path, {"w": T.View(np.arange(4, dtype=np.float32), offset, size, stride)})
    with pytest.raises(F.TorchFormatError, match="malformed tensor"):
        F.load_torch_file(path)


def test_torch_reader_rejects_view_past_storage(tmp_path):
    path = tmp_path / "bad.pth"
    T.save_zip(path, {"w": T.View(np.arange(4, dtype=np.float32), 1, (2, 2), (2, 1))})
    with pytest.raises(F.TorchFormatError, match="runs past its storage"):
        F.load_torch_file(path)


def test_legacy_headers_cannot_run_code(tmp_path):
    """A global in the magic-number pickle is refused, not imported and called."""
    hostile = b"\x80\x02ctorch_writer\nrecord_call\n)R."
    blob = T.legacy_bytes({"w": np.zeros(2, np.float32)})
    magic_len = len(pickle.dumps(T.LEGACY_MAGIC, protocol=2))
    path = tmp_path / "hostile.pth"
    path.write_bytes(hostile + blob[magic_len:])
    T.CALLS.clear()
    with pytest.raises(F.TorchFormatError, match="refusing"):
        F.load_torch_file(path)
    assert T.CALLS == []


def test_object_pickle_cannot_name_other_globals(tmp_path):
    blob = T.legacy_bytes({"w": np.zeros(2, np.float32)})
    path = tmp_path / "hostile.pth"
    path.write_bytes(blob.replace(b"torch._utils\n_rebuild_tensor_v2\n",
                                  b"torch_writer\nrecord_call\n", 1))
    T.CALLS.clear()
    with pytest.raises(F.TorchFormatError, match="refusing unexpected object"):
        F.load_torch_file(path)
    assert T.CALLS == []


def test_huge_length_field_is_a_format_error(tmp_path):
    """A corrupt 8-byte length (BINBYTES8) must not escape as MemoryError/OverflowError."""
    blob = T.legacy_bytes({"w": np.zeros(2, np.float32)})
    magic_len = len(pickle.dumps(T.LEGACY_MAGIC, protocol=2))
    for length in (2 ** 62, 2 ** 64 - 1):
        path = tmp_path / "huge.pth"
        path.write_bytes(b"\x80\x02\x8e" + struct.pack("<Q", length) + blob[magic_len:])
        with pytest.raises(F.TorchFormatError):
            F.load_torch_file(path)
