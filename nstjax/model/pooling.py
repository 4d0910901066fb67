"""VGG's 2×2, stride-2 pooling: max (with a lean backward pass), average and crowsonkb's
scaled L2, each over the same reshaped windows (odd last rows and columns dropped).

Average pooling replaces max pooling in Gatys, Ecker & Bethge, "Image Style Transfer Using
Convolutional Neural Networks", CVPR 2016, §2, who found its results slightly more
appealing; the seeds do not discuss pooling.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

POOLINGS = ("max", "avg", "l2")


def _pool_windows(x):
    """``x: [..., H, W, C]`` cropped to even ``H, W`` as ``[..., H/2, 2, W/2, 2, C]``."""
    h, w = x.shape[-3] // 2, x.shape[-2] // 2
    x = x[..., : 2 * h, : 2 * w, :]
    return x.reshape(x.shape[:-3] + (h, 2, w, 2, x.shape[-1]))


@jax.custom_vjp
def max_pool2x2(x):
    """2×2, stride-2 max pooling (odd last rows/columns dropped, like VALID padding).

    The backward pass routes each window's gradient to the first position (row-major)
    equal to its maximum, exactly as XLA's own rule (select-and-scatter) does; that rule
    keeps four 32-bit index tensors the size of the input alive (measured: 64 MB for a
    16 MB block-1 activation at 256×256), this one none.  Ties are common: flat image
    regions give equal activations.
    """
    return jnp.max(_pool_windows(x), axis=(-4, -2))


def avg_pool2x2(x):
    """2×2, stride-2 average pooling (as ``nn.avg_pool`` with VALID padding, by a reshape)."""
    return jnp.mean(_pool_windows(x), axis=(-4, -2))


def _max_pool_fwd(x):
    y = max_pool2x2(x)
    return y, (x, y)


def _max_pool_bwd(res, g):
    x, y = res
    win = _pool_windows(x)
    taken = jnp.zeros(y.shape, bool)
    rows = []
    for i in (0, 1):               # row-major: the first maximum of a window takes it all,
        cols = []                  # as XLA's select-and-scatter does
        for j in (0, 1):
            hit = (win[..., :, i, :, j, :] == y) & ~taken
            cols.append(jnp.where(hit, g, 0).astype(x.dtype))
            taken = taken | hit
        rows.append(jnp.stack(cols, axis=-2))
    dx = jnp.stack(rows, axis=-4)                      # [..., h, 2, w, 2, C]
    dx = dx.reshape(dx.shape[:-5] + (2 * y.shape[-3], 2 * y.shape[-2], x.shape[-1]))
    pad = [(0, 0)] * (x.ndim - 3) + [(0, x.shape[-3] - dx.shape[-3]),
                                     (0, x.shape[-2] - dx.shape[-2]), (0, 0)]
    return (jnp.pad(dx, pad),)


max_pool2x2.defvjp(_max_pool_fwd, _max_pool_bwd)

# L2 pooling's output over max pooling's on natural images is about 1/0.71 with these
# (Caffe) weights, so its output is scaled back to max pooling's level, as
# crowsonkb/style-transfer-pytorch scales its own (0.78 for torchvision's weights).
L2_POOL_SCALE = 0.71


def l2_pool2x2(x):
    """2×2, stride-2 L2 pooling, ``L2_POOL_SCALE · √(Σ x²)`` over each window (PyTorch's
    ``LPPool2d(2, 2)`` scaled; crowsonkb/style-transfer-pytorch's ``--pooling l2``): smooth
    like average pooling, yet led by the strongest activation like max pooling.  An
    all-zero window (common after a ReLU) has gradient zero, not NaN."""
    sq = jnp.sum(jnp.square(_pool_windows(x).astype(jnp.float32)), axis=(-4, -2))
    positive = sq > 0
    root = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)
    return (L2_POOL_SCALE * root).astype(x.dtype)
