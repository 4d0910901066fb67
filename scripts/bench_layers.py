#!/usr/bin/env python
"""Where an evaluation's time goes, layer by layer, and what Winograd F(4×4, 3×3) saves.

For each VGG19 convolution an evaluation runs (the network cut at relu5_1, the deepest
layer of the default objective), at the activation size an image of ``--size`` gives it:

* ``GFLOP``: the direct convolution's multiply-adds ×2, ``2·H·W·9·C_in·C_out``;
* ``xla ms``: the forward convolution as the library runs it (``conv3x3``, float32), and
  ``xla+bwd ms``: forward and the input gradient (``jax.vjp``), the work of one evaluation;
* ``share``: the direct GFLOP over ``xla ms`` against this machine's measured sgemm rate
  (a ``jnp.dot`` of two 2048×2048 float32 matrices);
* ``wino ms``, ``wino+bwd ms``: the same by F(4×4, 3×3) (``nstjax/model/winograd.py``),
  and the ratio ``wino / xla`` (< 1: Winograd is faster).

Each timing is the median of ``--repeat`` jitted calls after a warm-up, interleaved.

    python scripts/bench_layers.py --size 512
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
from nstjax.model.winograd import conv3x3_winograd


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
