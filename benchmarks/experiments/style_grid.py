#!/usr/bin/env python
"""A labelled grid like li2017 Fig. 3: content, style, then one result per style method.

    python benchmarks/experiments/style_grid.py --content photo.jpg --style painting.jpg \
        --methods mmd-linear,mmd-poly,mmd-gauss,bn --output grid.png

Every method runs with its registered scale λ and the same balance factor γ
(``--style-weight``), initialisation and iteration budget, so the panels differ only by the
style representation.  A fusion is one entry with ``+``: ``bn:0.5+mmd-poly:0.5``.  One
:class:`nstjax.Objective` per entry (each compiles once); the picture is
:func:`nstjax.io.pictures.labelled_grid` and a JSON sidecar records each run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

import nstjax
from nstjax.io import jsonio, pictures
from nstjax.io.image import ImageError
from nstjax.io.image_writing import check_writable, write_text_atomic


def main(argv=None) -> int:
    solver_defaults = nstjax.Solver()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--content", type=Path, required=True)
    p.add_argument("--style", type=Path, required=True)
    p.add_argument("--methods", default="mmd-linear,mmd-poly,mmd-gauss,bn",
                   help="comma-separated registry names (fusions as a:0.5+b:0.5)")
    p.add_argument("--output", type=Path, required=True, help=".png or .jpg")
    p.add_argument("--size", type=int, default=256, help="long edge in pixels")
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--style-weight", type=float, default=10.0, help="balance factor γ")
    p.add_argument("--optimizer", default=solver_defaults.optimizer,
                   help=f"{', '.join(nstjax.optimizer_names())} (default {solver_defaults.optimizer})")
    p.add_argument("--init", default="content", help="content, noise or style")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    p.add_argument("--weights", type=Path, help="vgg19.h5 (default: the library's)")
    args = p.parse_args(argv)

    try:
        runs = []           # (label, Objective, LossWeights): everything checked before work
        for entry in (m.strip() for m in args.methods.split(",") if m.strip()):
            names, mix = nstjax.parse_style_spec(entry.replace("+", ","))
            objective = nstjax.Objective(style_losses=names)
            weights = nstjax.loss_weights(objective, style_weight=args.style_weight,
                                          style_mix=mix)
            runs.append((entry, objective, weights))
        if not runs:
            raise ValueError("--methods: no method given")
        solver = nstjax.Solver(optimizer=args.optimizer, max_iter=args.iters)
        check_writable(args.output, protect=(args.content, args.style))
        content = nstjax.load_image(args.content, size=args.size)
        style = nstjax.load_image(args.style, size=args.size)
        vgg = nstjax.load_vgg19(args.weights, log=lambda m: print(m, file=sys.stderr))
    except (ImageError, ValueError, nstjax.WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    key = jax.random.PRNGKey(args.seed)
    panels, labels, record = [content, style], ["content", "style"], []
    for entry, objective, weights in runs:
        t = time.perf_counter()
        res = nstjax.stylize(vgg, content, style, key=key, objective=objective,
                             weights=weights, solver=solver, init=args.init)
        dt = time.perf_counter() - t
        panels.append(np.asarray(res.image))
        labels.append(f"{entry} ({int(res.n_iter)} it)")
        record.append({"method": entry, "style_losses": list(objective.style_losses),
                       "style_mix": np.asarray(weights.style_mix).tolist(),
                       "style_scales": np.asarray(res.weights.style_scales).tolist(),
                       "iterations": int(res.n_iter), "status": nstjax.Status(
                           int(res.status)).name.lower(),
                       "seconds": dt, "loss": float(res.loss),
                       "terms": {k: float(v) for k, v in res.terms.items()}})
        print(f"{entry}: {int(res.n_iter)} iterations, {dt:.1f} s, loss {float(res.loss):.4g}",
              file=sys.stderr)
    sheet = pictures.labelled_grid(panels, labels, cols=min(len(panels), 3))
    try:
        nstjax.save_image(args.output, sheet, protect=(args.content, args.style))
        write_text_atomic(args.output.with_name(args.output.name + ".json"), jsonio.dumps(
            {"style_weight": args.style_weight, "size": args.size, "iters": args.iters,
             "optimizer": args.optimizer, "init": args.init, "seed": args.seed, "runs": record},
            indent=2))
    except ImageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
