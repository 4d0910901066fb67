#!/usr/bin/env python
"""crowsonkb's practical tricks measured: each beside the run it changes, scored.

For every content:style pair, at one size, these runs (each after a warm-up that compiles
its programs, so ``solve_s`` is the solve alone):

* ``adam``: Adam, ``--adam-iters`` iterations (lr 0.02), the last iterate;
* ``adam+ema``: the same solve, the output the moving average of the iterates (β 0.99);
* ``plbfgs/max``, ``plbfgs/avg``, ``plbfgs/l2``: the default solver with max (the default),
  average (seed 001 §2, unscaled) and scaled L2 pooling;
* ``ladder``: Adam from ``size/2`` to ``size`` (√2 apart), ``--ladder-iters`` per size
  (its time includes compiling the later sizes);
* ``ladder+moments``: the same ladder, each size's Adam started with the last size's
  moments, resized.

Every picture is scored with ``nstjax.score`` (style distances relative to the content's:
1 = unstylised, 0 = the style's; content: relu4_2 relative error and luminance SSIM).
Writes ``tricks.json`` and ``tricks.png`` (rows: pairs; columns: runs; scores under each).

    python scripts/measure_tricks.py --pairs tubingen:starry_night brad_pitt:picasso_selfport1907 \\
        --size 256 --output-dir out/tricks
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import nstjax
from nstjax.io import jsonio, pictures
from nstjax.io.image_writing import save_image, write_text_atomic
from nstjax.run.multiscale import stylize_multiscale

IMAGES = Path(__file__).resolve().parent.parent.parent / "shared" / "images"


def resolve(name: str) -> Path:
    for p in (Path(name), IMAGES / name, IMAGES / f"{name}.jpg"):
        if p.is_file():
            return p
    raise SystemExit(f"error: no image {name!r} (a path, or a name in {IMAGES})")


def variants(args):
    """``{name: (run(vgg, content, style, key) -> TransferResult)}``."""
    adam = nstjax.Solver(optimizer="adam", max_iter=args.adam_iters, lr=0.02)
    plbfgs = nstjax.Solver(max_iter=args.lbfgs_iters)
    ladder = nstjax.Solver(optimizer="adam", max_iter=args.ladder_iters, lr=0.02)

    def single(solver, objective=nstjax.Objective()):
        return lambda vgg, c, s, key, callbacks=None: nstjax.stylize(
            vgg, c, s, key=key, solver=solver, objective=objective, callbacks=callbacks)

    def multi(carry):
        return lambda vgg, c, s, key, callbacks=None: stylize_multiscale(
            vgg, c, s, key=key, min_size=args.size // 2, iters=args.ladder_iters,
            solver=ladder, carry_moments=carry, callbacks=callbacks)

    return {
        "adam": single(adam),
        "adam+ema": single(dataclasses.replace(adam, average=0.99)),
        "plbfgs/max": single(plbfgs),
        "plbfgs/avg": single(plbfgs, nstjax.Objective(pooling="avg")),
        "plbfgs/l2": single(plbfgs, nstjax.Objective(pooling="l2")),
        "ladder": multi(False),
        "ladder+moments": multi(True),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", nargs="+", default=["tubingen:starry_night"])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--adam-iters", type=int, default=300)
    p.add_argument("--lbfgs-iters", type=int, default=200)
    p.add_argument("--ladder-iters", type=int, default=150)
    p.add_argument("--only", nargs="+", help="run only these variants")
    p.add_argument("--output-dir", type=Path, default=Path("out/tricks"))
    args = p.parse_args(argv)
    vgg = nstjax.load_vgg19()
    runs = variants(args)
    names = args.only or list(runs)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    key = jax.random.PRNGKey(0)
    cells, panels, labels = [], [], []
    for pair in args.pairs:
        c_name, s_name = pair.split(":")
        content = nstjax.load_image(resolve(c_name), size=args.size)
        style = nstjax.load_image(resolve(s_name), size=args.size)
        panels += [np.asarray(content), np.asarray(style)]
        labels += [c_name, s_name]
        for name in names:
            run = runs[name]
            if not name.startswith("ladder"):     # compile first (a ladder: timed with it)
                run(vgg, jnp.asarray(content), jnp.asarray(style), key,
                    nstjax.Callbacks(should_stop=lambda: True))
            t0 = time.perf_counter()
            result = run(vgg, jnp.asarray(content), jnp.asarray(style), key)
            image = np.asarray(result.image)
            solve_s = time.perf_counter() - t0
            (sc,) = nstjax.score(vgg, content, style, [image])
            cell = {"pair": pair, "run": name, "solve_s": solve_s,
                    "iters": int(result.n_iter), "loss": float(result.loss),
                    "style": sc.style, "content_error": sc.content_error, "ssim": sc.ssim}
            cells.append(cell)
            save_image(args.output_dir / f"{c_name}_{s_name}_{name.replace('/', '-')}.png",
                       image)
            panels.append(image)
            labels.append(f"{name} SW {sc.style['sliced_wasserstein']:.3f} "
                          f"c {sc.content_error:.2f} {solve_s:.0f}s")
            print(f"{pair:32s} {name:15s} SW {sc.style['sliced_wasserstein']:.3f} "
                  f"Gram {sc.style['gram']:.3f} MC {sc.style['mean_cov']:.3f} "
                  f"relu4_2 {sc.content_error:.3f} SSIM {sc.ssim:.3f} "
                  f"{int(result.n_iter)} it {solve_s:.1f} s", flush=True)
    sheet = pictures.labelled_grid(panels, labels, cols=len(names) + 2, cell=240)
    save_image(args.output_dir / "tricks.png", sheet)
    write_text_atomic(args.output_dir / "tricks.json",
                      jsonio.dumps({"size": args.size, "cells": cells}, indent=1))
    print(f"wrote {args.output_dir / 'tricks.png'} and tricks.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
