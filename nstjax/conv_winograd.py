"""3×3 SAME convolution by Winograd's minimal filtering F(2×2, 3×3), as batched matmuls.

Each 2×2 block of outputs comes from a 4×4 tile of inputs: ``Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A``
summed over input channels, which is 16 matrix products of ``(tiles × C_in) @ (C_in ×
C_out)``: 16 multiplies per 4 outputs instead of 36, 2.25× fewer than direct convolution.
The input gradient, by automatic differentiation of these linear maps, is the same
algorithm transposed (16 products with ``Uᵀ``), so the saving holds in the backward pass.

Experimental: compare with :func:`nstjax.vgg.conv3x3` before use (``scripts/benchmark.py``
reports only what wins).

References:
  Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016, §4.1
  (the matrices ``Bᵀ``, ``G``, ``Aᵀ`` of F(2×2, 3×3)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)


def transform_kernel(kernel):
    """``U = G g Gᵀ`` per channel pair: ``f32[3, 3, C, K]`` (HWIO) to ``f32[16, C, K]``."""
    u = jnp.einsum("ai,ijck,bj->abck", _G, kernel, _G)
    return u.reshape(16, *kernel.shape[2:])


def _combine(rows, matrix):
    """``Σ_j matrix[i, j] rows[j]`` for each i, skipping zero coefficients."""
    out = []
    for coeffs in matrix:
        acc = None
        for c, r in zip(coeffs, rows):
            if c == 0:
                continue
            term = r if c == 1 else (-r if c == -1 else c * r)
            acc = term if acc is None else acc + term
        out.append(acc)
    return out


def _sandwich(tiles, matrix):
    """``matrix · tiles · matrixᵀ`` where ``tiles[a][b]`` are arrays (the tile elements)."""
    n = len(tiles)
    cols = [_combine([tiles[a][b] for a in range(n)], matrix) for b in range(n)]
    return [_combine([cols[b][i] for b in range(n)], matrix) for i in range(len(matrix))]


def conv3x3_winograd(x, kernel, *, transformed=None):
    """3×3, stride-1, SAME convolution of ``x`` (NHWC) with ``kernel`` (HWIO).

    Args:
      x: ``f32[N, H, W, C]``.
      kernel: ``f32[3, 3, C, K]``.
      transformed: optional :func:`transform_kernel` of ``kernel`` (computed if absent).

    Returns:
      ``f32[N, H, W, K]``, equal to ``lax.conv_general_dilated(x, kernel, (1, 1), "SAME")``
      up to float rounding.
    """
    n, h, w, c = x.shape
    k = kernel.shape[-1]
    th, tw = -(-h // 2), -(-w // 2)
    u = transform_kernel(kernel) if transformed is None else transformed
    # Pad by 1 (SAME) and up to whole tiles: tile (i, j) reads rows 2i..2i+3.
    xp = jnp.pad(x, ((0, 0), (1, 2 * th + 1 - h), (1, 2 * tw + 1 - w), (0, 0)))
    # d[a][b] = the (a, b) element of every tile, f32[N, th, tw, C].
    d = [[xp[:, a:a + 2 * th:2, b:b + 2 * tw:2, :] for b in range(4)] for a in range(4)]
    v = _sandwich(d, _BT)                                       # V = Bᵀ d B, v[ξ][ν]
    v = jnp.stack([v[a][b] for a in range(4) for b in range(4)])  # f32[16, N, th, tw, C]
    m = jnp.einsum("tnijc,tck->tnijk", v, u)                   # 16 batched matmuls
    y = _sandwich([[m[4 * a + b] for b in range(4)] for a in range(4)], _AT)  # Aᵀ M A
    y = jnp.stack([jnp.stack([y[0][0], y[0][1]], 3), jnp.stack([y[1][0], y[1][1]], 3)], 2)
    return y.reshape(n, 2 * th, 2 * tw, k)[:, :h, :w, :]
