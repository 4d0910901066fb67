"""3×3 convolutions by Winograd's minimal filtering, F(4×4, 3×3): 4× fewer multiplications.

A 3×3, stride-1, SAME convolution of an ``[N, H, W, C]`` image is computed on 4×4 output
tiles, each from a 6×6 input tile (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", CVPR 2016, §4, F(4×4, 3×3); Winograd 1980):

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A

per tile ``d`` (6×6) and kernel ``g`` (3×3); over channels the elementwise product becomes
36 independent matrix products ``[tiles, C_in] × [C_in, C_out]``, which is where the work
goes: 36 multiply-adds per tile and channel pair instead of the direct convolution's
16·9 = 144.  The transforms are additions (and small constants) over 6×6 tiles.  Rounding
grows with the transform's constants (up to 8 in ``A``, 1/24 in ``G``): in float32 the
result differs from the direct convolution by about 1e-6 of the activations' scale.

:func:`conv3x3_winograd` matches :func:`nstjax.model.vgg.conv3x3`'s contract (NHWC input,
HWIO kernel, float32) and its gradient with respect to the input is again a Winograd
convolution (of the output gradient with the flipped kernel); the kernel gradient is the
direct one (XLA removes it when, as in style transfer, nobody reads it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

M, R = 4, 3                  # output tile, kernel size
ALPHA = M + R - 1            # input tile

BT = np.array([[4, 0, -5, 0, 1, 0],
               [0, -4, -4, 1, 1, 0],
               [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0],
               [0, 4, 0, -5, 0, 1]], np.float32)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], np.float32)
AT = np.array([[1, 1, 1, 1, 1, 0],
               [0, 1, -1, 2, -2, 0],
               [0, 1, 1, 4, 4, 0],
               [0, 1, -1, 8, -8, 1]], np.float32)

_HI = jax.lax.Precision.HIGHEST


def kernel_transform(kernel):
    """``U = G g Gᵀ`` per channel pair: HWIO ``[3, 3, C_in, C_out]`` to ``[36, C_in, C_out]``."""
    u = jnp.einsum("ai,ijco,bj->abco", G, kernel, G, precision=_HI)
    return u.reshape(ALPHA * ALPHA, *kernel.shape[2:])


def _input_tiles(x):
    """``V = Bᵀ d B`` of every 6×6 input tile: ``[36, N·th·tw, C]`` and the tile grid."""
    n, h, w, c = x.shape
    th, tw = -(-h // M), -(-w // M)
    x = jnp.pad(x, ((0, 0), (1, M * th + 1 - h), (1, M * tw + 1 - w), (0, 0)))
    # d[a, b] = the (a, b) element of every tile: strided slices, no gather
    rows = [x[:, a:a + M * th:M] for a in range(ALPHA)]                    # [N, th, Wp, C]
    d = jnp.stack([jnp.stack([r[:, :, b:b + M * tw:M] for b in range(ALPHA)]) for r in rows])
    v = jnp.einsum("xa,abnijc,yb->xynijc", BT, d, BT, precision=_HI)
    return v.reshape(ALPHA * ALPHA, n * th * tw, c), (n, th, tw)


def winograd_conv(x, u):
    """The convolution of ``x: [N, H, W, C_in]`` with transformed kernel ``u``
    (:func:`kernel_transform`), ``[N, H, W, C_out]``."""
    n, h, w, _ = x.shape
    v, (n, th, tw) = _input_tiles(x)
    m = jnp.matmul(v, u, precision=_HI)                                   # [36, P, C_out]
    m = m.reshape(ALPHA, ALPHA, n, th, tw, -1)
    y = jnp.einsum("ia,abnpqo,jb->npiqjo", AT, m, AT, precision=_HI)
    return y.reshape(n, th * M, tw * M, -1)[:, :h, :w]


@jax.custom_vjp
def conv3x3_winograd(x, kernel):
    """3×3, stride-1, SAME convolution (NHWC, HWIO, float32) by F(4×4, 3×3)."""
    return winograd_conv(x, kernel_transform(kernel))


def _fwd(x, kernel):
    return conv3x3_winograd(x, kernel), (x, kernel)


def _bwd(res, g):
    x, kernel = res
    flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
    dk = jax.vjp(lambda k: jax.lax.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")), kernel)[1](g)[0]
    return winograd_conv(g, kernel_transform(flipped)), dk


conv3x3_winograd.defvjp(_fwd, _bwd)
