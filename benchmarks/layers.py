#!/usr/bin/env python
"""Where an evaluation's time goes, layer by layer, and what Winograd F(4×4, 3×3) saves.

For each VGG19 convolution an evaluation runs (the network cut at relu5_1, the deepest
layer of the default objective), at the activation size an image of ``--size`` gives it:

* ``GFLOP``: the direct convolution's multiply-adds ×2, ``2·H·W·9·C_in·C_out``;
* ``xla ms``: the forward convolution as the library runs it (``conv3x3``, float32), and
  ``xla+bwd ms``: forward and the input gradient (``jax.vjp``), the work of one evaluation;
* ``share``: the direct GFLOP over ``xla ms`` against this machine's measured sgemm rate
  (a ``jnp.dot`` of two 2048×2048 float32 matrices);
* ``wino ms``, ``wino+bwd ms``: the same by Winograd's F(4×4, 3×3) written in XLA ops
  (below, checked against XLA's convolution first), and the ratio ``wino / xla`` (< 1:
  Winograd is faster).

Each timing is the median of ``--repeat`` jitted calls after a warm-up, interleaved.

    python benchmarks/layers.py --size 512
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.model.layers import BLOCK_SIZES, VGG_WIDTHS
from nstjax.model.vgg import conv3x3

# ---------------------------------------------------------------- Winograd F(4×4, 3×3)
# Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016, §4:
# Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A per 6×6 input tile d and 3×3 kernel g, 4×4 outputs; over
# channels, 36 matrix products [tiles, C_in] × [C_in, C_out]: 36 multiply-adds per tile and
# channel pair instead of 144.  Here only, as the experiment: it is not in the library,
# because XLA's own convolution beats it on every layer (the table this script prints).

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


def check_winograd() -> None:
    """The experiment's convolution and input gradient against XLA's (relative 1e-5), on
    odd sizes (partial tiles); refuses to time a wrong one."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(1, 13, 7, 8)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(3, 3, 8, 4)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(1, 13, 7, 4)), jnp.float32)
    for conv_w, conv_d in ((conv3x3_winograd, conv3x3),):
        yw, vw = jax.vjp(lambda x: conv_w(x, k), x)
        yd, vd = jax.vjp(lambda x: conv_d(x, k), x)
        for a, b in ((yw, yd), (vw(g)[0], vd(g)[0])):
            err = float(jnp.abs(a - b).max() / jnp.abs(b).max())
            if err > 1e-5:
                raise SystemExit(f"Winograd convolution differs from XLA's by {err:.1e}")


def median_ms(fn, *args, repeat: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def sgemm_gflops(repeat: int) -> float:
    a = jnp.ones((2048, 2048), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    return 2 * 2048 ** 3 / (median_ms(f, a, repeat=repeat) * 1e-3) / 1e9


def layers(size: int, aspect: float = 0.75, last_block: int = 5, convs_in_last: int = 1):
    """``(name, H, W, C_in, C_out)`` of every convolution up to conv5_1."""
    h, w = round(size * aspect), size
    c_in, out = 3, []
    for b, (n, width) in enumerate(zip(BLOCK_SIZES, VGG_WIDTHS), start=1):
        for i in range(1, n + 1):
            if b == last_block and i > convs_in_last:
                return out
            out.append((f"conv{b}_{i}", h, w, c_in, width))
            c_in = width
        h, w = h // 2, w // 2
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=512, help="image long edge (4:3)")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    check_winograd()
    rate = sgemm_gflops(args.repeat)
    print(f"sgemm: {rate:.0f} GFLOP/s ({jax.devices()[0].platform}, {jax.device_count()} "
          f"device(s))")
    print(f"{'layer':8s} {'H×W':>9s} {'Cin':>4s} {'Cout':>4s} {'GFLOP':>6s} {'xla ms':>7s} "
          f"{'share':>6s} {'wino ms':>7s} {'ratio':>5s} {'xla+bwd':>8s} {'wino+bwd':>8s} "
          f"{'ratio':>5s}")
    rng = np.random.default_rng(0)
    totals = np.zeros(4)
    for name, h, w, ci, co in layers(args.size):
        x = jnp.asarray(rng.uniform(0, 1, (1, h, w, ci)), jnp.float32)
        k = jnp.asarray(rng.normal(0, 0.05, (3, 3, ci, co)), jnp.float32)
        g = jnp.asarray(rng.normal(0, 1, (1, h, w, co)), jnp.float32)
        direct = jax.jit(conv3x3)
        wino = jax.jit(conv3x3_winograd)

        def both(conv):
            def f(x, k, g):
                y, vjp = jax.vjp(lambda x: conv(x, k), x)
                return y, vjp(g)[0]
            return jax.jit(f)

        d_both, w_both = both(conv3x3), both(conv3x3_winograd)
        t = [median_ms(direct, x, k, repeat=args.repeat),
             median_ms(wino, x, k, repeat=args.repeat),
             median_ms(d_both, x, k, g, repeat=args.repeat),
             median_ms(w_both, x, k, g, repeat=args.repeat)]
        totals += t
        gflop = 2 * h * w * 9 * ci * co / 1e9
        share = gflop / (t[0] * 1e-3) / rate
        print(f"{name:8s} {h:4d}×{w:<4d} {ci:4d} {co:4d} {gflop:6.2f} {t[0]:7.1f} "
              f"{share:6.0%} {t[1]:7.1f} {t[1] / t[0]:5.2f} {t[2]:8.1f} {t[3]:8.1f} "
              f"{t[3] / t[2]:5.2f}", flush=True)
    print(f"{'total':8s} {'':>9s} {'':>4s} {'':>4s} {'':>6s} {totals[0]:7.1f} {'':>6s} "
          f"{totals[1]:7.1f} {totals[1] / totals[0]:5.2f} {totals[2]:8.1f} {totals[3]:8.1f} "
          f"{totals[3] / totals[2]:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
