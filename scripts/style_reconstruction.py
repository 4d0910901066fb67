#!/usr/bin/env python
"""Style reconstruction from noise (seed 002 §1.1, seed 003 Fig. 1): style loss only.

For each method, optimise a noise image so that its style representation matches the style
image's (content weight 0), then print how much the result still resembles the style image
*pixel by pixel* (Pearson correlation of grey levels).  A true style representation discards
where things are, so the correlation is near 0; seed 002 reports that the channel-wise MMD of
eq. 1.6, which pairs positions, reconstructs the style image itself instead (correlation
well above 0).

    python scripts/style_reconstruction.py --style painting.jpg --output recon.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402


def pixel_correlation(a, b) -> float:
    """Pearson correlation of the grey levels of two equal-size RGB images."""
    ga, gb = np.asarray(a).mean(-1).ravel(), np.asarray(b).mean(-1).ravel()
    return float(np.corrcoef(ga, gb)[0, 1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--style", type=Path, required=True)
    p.add_argument("--methods", default="gram,bn,mmd-linear,channel-mmd")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--iters", type=int, default=150)
    p.add_argument("--style-layers", default="relu1_1,relu1_2,relu2_1,relu2_2",
                   help="default: the layers R of seed 002 eq. 1.7")
    p.add_argument("--weights", type=Path)
    args = p.parse_args(argv)

    import jax

    import nstjax
    from nstjax.image import ImageError, load_image, write_text_atomic
    from style_grid import labelled_grid

    try:
        style = load_image(args.style, size=args.size)
        vgg = nstjax.load_vgg19(args.weights)
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        configs = [nstjax.StyleConfig(style_loss=m, content_weight=0.0, style_weight=1.0,
                                      style_layers=args.style_layers,
                                      init="noise", max_iter=args.iters) for m in methods]
    except (ImageError, ValueError, nstjax.WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    panels, labels, record = [style], ["style"], []
    noise_corr = None
    for method, config in zip(methods, configs):
        res = nstjax.stylize(vgg, style, style, config=config, key=jax.random.PRNGKey(0))
        img = np.asarray(res.image)
        if noise_corr is None:
            noise = jax.random.uniform(jax.random.split(jax.random.PRNGKey(0))[0], style.shape)
            noise_corr = pixel_correlation(noise, style)
        corr = pixel_correlation(img, style)
        panels.append(img)
        labels.append(f"{method} r={corr:.2f}")
        record.append({"method": method, "pixel_correlation": corr,
                       "iterations": int(res.n_iter), "loss": float(res.loss)})
        print(f"{method:12s} pixel correlation with the style image {corr:+.3f} "
              f"({int(res.n_iter)} iterations)", file=sys.stderr)
    print(f"{'noise init':12s} pixel correlation with the style image {noise_corr:+.3f}",
          file=sys.stderr)
    sheet = labelled_grid(panels, labels, cols=len(panels), cell=max(160, style.shape[1]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(f".{args.output.name}.part{args.output.suffix}")
    sheet.save(tmp)
    tmp.replace(args.output)
    write_text_atomic(args.output.with_name(args.output.name + ".json"),
                      json.dumps({"noise_correlation": noise_corr, "runs": record}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
