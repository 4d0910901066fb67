#!/usr/bin/env python
"""Style reconstruction from noise (stylerep §1.1, li2017 Fig. 1): style loss only.

For each method, optimise a noise image so that its style representation matches the style
image's (content weight 0), then print how much the result still resembles the style image
*pixel by pixel* (Pearson correlation of grey levels).  A true style representation discards
where things are, so the correlation is near 0; stylerep reports that the channel-wise MMD of
eq. 1.6, which pairs positions, reconstructs the style image itself instead (correlation
well above 0).

    python benchmarks/experiments/style_reconstruction.py --style painting.jpg --output recon.png

Every method starts from the same uniform noise image (``--seed``), whose own correlation
with the style image is printed as the baseline.  A fusion is one entry with ``+``
(``bn:0.5+mmd-poly:0.5``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import nstjax
from nstjax.io import jsonio, pictures
from nstjax.io.image import ImageError
from nstjax.io.image_writing import check_writable, write_text_atomic


def pixel_correlation(a, b) -> float:
    """Pearson correlation of the grey levels of two equal-size RGB images."""
    ga, gb = np.asarray(a).mean(-1).ravel(), np.asarray(b).mean(-1).ravel()
    return float(np.corrcoef(ga, gb)[0, 1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--style", type=Path, required=True)
    p.add_argument("--methods", default="gram,bn,mmd-linear,channel-mmd",
                   help="comma-separated registry names (fusions as a:0.5+b:0.5)")
    p.add_argument("--output", type=Path, required=True, help=".png or .jpg")
    p.add_argument("--size", type=int, default=96, help="long edge in pixels")
    p.add_argument("--iters", type=int, default=150)
    p.add_argument("--style-layers", default="relu1_1,relu1_2,relu2_1,relu2_2",
                   help="default: the layers R of stylerep eq. 1.7")
    p.add_argument("--optimizer", default=nstjax.Solver().optimizer,
                   help=f"{', '.join(nstjax.optimizer_names())} (default {nstjax.Solver().optimizer})")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the noise image")
    p.add_argument("--weights", type=Path, help="vgg19.h5 (default: the library's)")
    args = p.parse_args(argv)

    try:
        layers = tuple(s.strip() for s in args.style_layers.split(",") if s.strip())
        runs = []
        for entry in (m.strip() for m in args.methods.split(",") if m.strip()):
            names, mix = nstjax.parse_style_spec(entry.replace("+", ","))
            objective = nstjax.Objective(style_layers=layers, style_losses=names)
            # Content weight 0: put the (unused) content layer on the deepest style layer so
            # the network is not run deeper than the style needs.
            objective = dataclasses.replace(objective, content_layers=objective.layers[-1:])
            weights = nstjax.loss_weights(objective, content_weight=0.0, style_weight=1.0,
                                          style_mix=mix)
            runs.append((entry, objective, weights))
        if not runs:
            raise ValueError("--methods: no method given")
        solver = nstjax.Solver(optimizer=args.optimizer, max_iter=args.iters)
        check_writable(args.output, protect=(args.style,))
        style = nstjax.load_image(args.style, size=args.size)
        vgg = nstjax.load_vgg19(args.weights, log=lambda m: print(m, file=sys.stderr))
    except (ImageError, ValueError, nstjax.WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    key_noise, key_loss = jax.random.split(jax.random.PRNGKey(args.seed))
    noise = jax.random.uniform(key_noise, style.shape, jnp.float32)
    noise_corr = pixel_correlation(noise, style)
    panels, labels, record = [style], ["style"], []
    for entry, objective, weights in runs:
        res = nstjax.stylize(vgg, style, style, key=key_loss, objective=objective,
                             weights=weights, solver=solver, init=noise)
        img = np.asarray(res.image)
        corr = pixel_correlation(img, style)
        panels.append(img)
        labels.append(f"{entry} r={corr:.2f}")
        record.append({"method": entry, "pixel_correlation": corr,
                       "iterations": int(res.n_iter), "loss": float(res.loss)})
        print(f"{entry:12s} pixel correlation with the style image {corr:+.3f} "
              f"({int(res.n_iter)} iterations)", file=sys.stderr)
    print(f"{'noise init':12s} pixel correlation with the style image {noise_corr:+.3f}",
          file=sys.stderr)
    sheet = pictures.labelled_grid(panels, labels, cols=len(panels),
                                   cell=max(160, style.shape[1]))
    try:
        nstjax.save_image(args.output, sheet, protect=(args.style,))
        write_text_atomic(args.output.with_name(args.output.name + ".json"), jsonio.dumps(
            {"noise_correlation": noise_corr, "size": args.size, "iters": args.iters,
             "style_layers": list(layers), "seed": args.seed, "runs": record}, indent=2))
    except ImageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
