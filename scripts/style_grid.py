#!/usr/bin/env python
"""A labelled grid like seed 003 Fig. 3: content, style, then one result per style method.

    python scripts/style_grid.py --content photo.jpg --style painting.jpg \
        --methods mmd-linear,mmd-poly,mmd-gauss,bn --output grid.png

Every method runs with its registered scale λ and the same balance factor γ
(``--style-weight``), initialisation and iteration budget, so the panels differ only by the
style representation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402


def labelled_grid(panels, labels, *, cols, cell=None) -> Image.Image:
    """Tile RGB [0, 1] arrays into one image with a caption under each."""
    ims = [Image.fromarray((np.clip(p, 0, 1) * 255 + 0.5).astype(np.uint8)) for p in panels]
    w = cell or max(im.width for im in ims)
    h = max(round(im.height * w / im.width) for im in ims)
    pad = 18
    rows = -(-len(ims) // cols)
    sheet = Image.new("RGB", (cols * w, rows * (h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (im, label) in enumerate(zip(ims, labels)):
        r, c = divmod(i, cols)
        sheet.paste(im.resize((w, round(im.height * w / im.width))), (c * w, r * (h + pad)))
        draw.text((c * w + 4, r * (h + pad) + h + 3), label, fill="black")
    return sheet


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--content", type=Path, required=True)
    p.add_argument("--style", type=Path, required=True)
    p.add_argument("--methods", default="mmd-linear,mmd-poly,mmd-gauss,bn",
                   help="comma-separated registry names (fusions as a:0.5+b:0.5)")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--style-weight", type=float, default=10.0, help="balance factor γ")
    p.add_argument("--optimizer", default="lbfgsb")
    p.add_argument("--init", default="content")
    p.add_argument("--weights", type=Path)
    args = p.parse_args(argv)

    import jax

    import nstjax
    from nstjax.image import ImageError, load_image, write_text_atomic

    try:
        content = load_image(args.content, size=args.size)
        style = load_image(args.style, size=args.size)
        methods = [m.strip().replace("+", ",") for m in args.methods.split(",") if m.strip()]
        configs = [nstjax.StyleConfig(style_loss=m, style_weight=args.style_weight,
                                      max_iter=args.iters, optimizer=args.optimizer,
                                      init=args.init) for m in methods]
        if args.output.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            raise ValueError(f"{args.output}: use a .png or .jpg output")
        vgg = nstjax.load_vgg19(args.weights)
    except (ImageError, ValueError, nstjax.WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    panels, labels, record = [content, style], ["content", "style"], []
    for method, config in zip(methods, configs):
        t = time.perf_counter()
        res = nstjax.stylize(vgg, content, style, config=config, key=jax.random.PRNGKey(0))
        dt = time.perf_counter() - t
        panels.append(np.asarray(res.image))
        labels.append(f"{method} ({int(res.n_iter)} it)")
        record.append({"method": method, "iterations": int(res.n_iter), "seconds": dt,
                       "loss": float(res.loss),
                       "terms": {k: float(v) for k, v in res.terms.items()}})
        print(f"{method}: {int(res.n_iter)} iterations, {dt:.1f} s, loss {float(res.loss):.4g}",
              file=sys.stderr)
    sheet = labelled_grid(panels, labels, cols=min(len(panels), 3))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(f".{args.output.name}.part{args.output.suffix}")
    sheet.save(tmp)
    tmp.replace(args.output)
    write_text_atomic(args.output.with_name(args.output.name + ".json"),
                      json.dumps({"style_weight": args.style_weight, "size": args.size,
                                  "runs": record}, indent=2))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
