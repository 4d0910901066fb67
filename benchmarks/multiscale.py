"""Coarse-to-fine against single-scale at the same wall time: final full-size objective.

Runs, in one process, a single-scale solve at ``--size`` for ``--iters`` iterations and a
coarse-to-fine ladder from ``--min-size`` whose iterations per rung are ``--scale-iters``;
prints both solving times (steady state: from the end of each rung's first compiled chunk
to its last, scaled to all its iterations, so compilation is left out; totals with
compilation beside), both final objectives at full size (the last rung is the same problem
as the single-scale run: same images, targets and weights) and their ratios, and writes
both images and a side-by-side PNG.

    python benchmarks/multiscale.py --content ../shared/images/tubingen.jpg \\
        --style ../shared/images/starry_night.jpg --size 512 --min-size 128 \\
        --iters 100 --scale-iters 100,100,60,40,30 --out /tmp/ms
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np

import nstjax
from nstjax.io.image import load_image
from nstjax.io.image_writing import save_image
from nstjax.run import multiscale


class Clock:
    """Progress callback that times the steady state of every solve (rung), in wall time
    and in this process's CPU time (the fairer clock on a shared machine)."""

    def __init__(self):
        self.rungs = []           # [first_i, (wall, cpu) first, last_i, (wall, cpu) last]
        self._new = True

    def progress(self, i, value):
        now = (time.perf_counter(), time.process_time())
        if self._new:
            self.rungs.append([i, now, i, now])
            self._new = False
        else:
            self.rungs[-1][2:] = [i, now]

    def mark_new_rung(self):
        self._new = True

    def steady_seconds(self, counts) -> tuple[float, float]:
        """``(wall, cpu)``: per-iteration time after each rung's first chunk, times all its
        iterations, summed over rungs."""
        wall = cpu = 0.0
        for (i0, t0, i1, t1), n in zip(self.rungs, counts):
            wall += (t1[0] - t0[0]) / max(i1 - i0, 1) * n
            cpu += (t1[1] - t0[1]) / max(i1 - i0, 1) * n
        return wall, cpu


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--content", required=True)
    p.add_argument("--style", required=True)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--min-size", type=int, default=128)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--scale-iters", default="100,100,60,40,30")
    p.add_argument("--style-weight", type=float, default=None)
    p.add_argument("--weights", default=None)
    p.add_argument("--out", default="/tmp/nstjax_multiscale")
    p.add_argument("--add-detail", action="store_true",
                   help="start each rung with the content's detail lost by upsampling added")
    p.add_argument("--multi-only", action="store_true", help="skip the single-scale run")
    p.add_argument("--single-only", action="store_true", help="skip the coarse-to-fine run")
    p.add_argument("--init", default="content", help="content, noise, style or grey")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    vgg = nstjax.load_vgg19(args.weights)
    content = load_image(args.content, size=args.size)
    style = load_image(args.style, size=args.size)
    objective = nstjax.Objective()
    kw = {} if args.style_weight is None else {"style_weight": args.style_weight}
    weights = nstjax.loss_weights(objective, **kw)
    solver = nstjax.Solver(max_iter=args.iters)
    key = jax.random.PRNGKey(0)
    ladder = multiscale.size_ladder(args.min_size, args.size)
    counts = multiscale.scale_iterations([int(v) for v in args.scale_iters.split(",")]
                                         if "," in args.scale_iters else
                                         int(args.scale_iters), len(ladder))
    print(f"content {content.shape[1]}×{content.shape[0]}, style {style.shape[1]}×"
          f"{style.shape[0]}, {solver.optimizer}, ladder {ladder}, iterations {counts}",
          flush=True)

    if not args.multi_only:
        clock_s = Clock()
        t = time.perf_counter()
        single = nstjax.stylize(vgg, content, style, key=key, objective=objective,
                                weights=weights, solver=solver, init=args.init,
                                callbacks=nstjax.Callbacks(progress=clock_s.progress))
        single_total = time.perf_counter() - t
        single_steady = clock_s.steady_seconds([int(single.n_iter)])
        print(f"single-scale: {int(single.n_iter)} it, loss {float(single.loss):.6g}, "
              f"steady wall {single_steady[0]:.1f} s, cpu {single_steady[1]:.1f} s; wall "
              f"with compilation {single_total:.1f} s", flush=True)
        print("single terms", {k: f"{float(v):.4g}" for k, v in single.terms.items()})
        save_image(out / "single.png", np.asarray(single.image))
        if args.single_only:
            return

    clock_m = Clock()
    # Iteration numbers run on across rungs, so mark each rung's start by wrapping stylize.
    real = multiscale.stylize

    def stylize_rung(*a, **k):
        clock_m.mark_new_rung()
        return real(*a, **k)

    multiscale.stylize = stylize_rung
    t = time.perf_counter()
    multi = multiscale.stylize_multiscale(
        vgg, content, style, key=key, min_size=args.min_size, iters=counts,
        objective=objective, weights=weights, solver=solver, add_detail=args.add_detail,
        init=args.init,
        callbacks=nstjax.Callbacks(progress=clock_m.progress))
    multi_total = time.perf_counter() - t
    multiscale.stylize = real
    multi_steady = clock_m.steady_seconds(counts)
    per_rung = [f"{s.name}: {float(s.result.loss):.4g}" for s in multi.stages]
    print(f"coarse-to-fine: {multi.n_iter} it ({', '.join(per_rung)}), final loss "
          f"{float(multi.loss):.6g}, steady wall {multi_steady[0]:.1f} s, cpu "
          f"{multi_steady[1]:.1f} s; wall with compilation {multi_total:.1f} s", flush=True)
    print("multi terms ", {k: f"{float(v):.4g}" for k, v in multi.terms.items()})
    save_image(out / "multiscale.png", np.asarray(multi.image))
    if args.multi_only:
        return
    print(f"ratios multi/single: objective {float(multi.loss) / float(single.loss):.3f}, "
          f"steady wall {multi_steady[0] / single_steady[0]:.3f}, steady cpu "
          f"{multi_steady[1] / single_steady[1]:.3f}, wall with compilation "
          f"{multi_total / single_total:.3f}")
    side = np.concatenate([np.asarray(single.image), np.ones((content.shape[0], 8, 3)),
                           np.asarray(multi.image)], axis=1)
    save_image(out / "side_by_side.png", side)
    print(f"wrote {out}/single.png, multiscale.png, side_by_side.png")


if __name__ == "__main__":
    main()
