#!/usr/bin/env python
"""Do tiles look like one picture?  The same run untiled and tiled, scored tile by tile.

    python benchmarks/tiles.py --content photo.jpg --style painting.jpg --size 640 \
        --tile 256 --iters 20 --tile-iters 5 --out-dir out/tile_check

Runs ``nstjax stylize`` three times (untiled; ``--tile-match local``, the default; and
``--tile-match whole``), then scores every tile's core region of each output with
``nstjax.score`` (sliced-Wasserstein style distance relative to the content's: 1 is the
photo, 0 the style) and prints, per run, the mean, the spread (max − min) and the standard
deviation over the regions.  Writes ``corner.png``: the 96-pixel square around the corner
where four tiles meet in each output, side by side, magnified 3×.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nstjax  # noqa: E402
from nstjax.io import pictures  # noqa: E402
from nstjax.io.image import load_image  # noqa: E402
from nstjax.io.image_writing import save_image  # noqa: E402
from nstjax.large.tile_layout import tile_layout  # noqa: E402


def _run(args, out: Path, extra: list[str]) -> float:
    cmd = ["nstjax", "stylize", "--content", str(args.content), "--style", str(args.style),
           "--output", str(out), "--size", str(args.size), "--iters", str(args.iters),
           "--no-progress", *extra]
    subprocess.run(cmd, check=True)
    return json.loads(out.with_name(out.name + ".json").read_text())["timings_s"]["total"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--content", type=Path, required=True, help="content image")
    p.add_argument("--style", type=Path, required=True, help="style image")
    p.add_argument("--size", type=int, default=640, help="long edge (default 640)")
    p.add_argument("--tile", type=int, default=256, help="tile edge (default 256)")
    p.add_argument("--iters", type=int, default=20, help="iterations, untiled and coarse "
                   "(default 20)")
    p.add_argument("--tile-iters", type=int, default=5, help="iterations per tile "
                   "(default 5)")
    p.add_argument("--out-dir", type=Path, default=Path("out/tile_check"),
                   help="folder for the outputs (default out/tile_check)")
    args = p.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    tiled = ["--tile", str(args.tile), "--tile-iters", str(args.tile_iters)]
    runs = {"untiled": [], "tiles, local": tiled + ["--tile-match", "local"],
            "tiles, whole": tiled + ["--tile-match", "whole"]}
    outputs, seconds = {}, {}
    for name, extra in runs.items():
        out = args.out_dir / (name.replace(", ", "_").replace(" ", "_") + ".png")
        seconds[name] = _run(args, out, extra)
        outputs[name] = load_image(out)
    sidecar = json.loads((args.out_dir / "tiles_local.png.json").read_text())
    tiles = sidecar["tiles"]
    content = load_image(args.content, size=args.size)
    style = load_image(args.style, size=args.size)
    h, w = content.shape[:2]
    layout = tile_layout((h, w), args.tile, tiles["overlap"], tiles["margin"])
    ch, cw = layout.core
    vgg = nstjax.load_vgg19()
    print(f"{w}×{h}, {len(layout.cores)} tiles of {args.tile} px (cores {cw}×{ch}); style "
          "score per core region (sliced Wasserstein relative to the photo's: 1 = photo, "
          "0 = style)")
    print(f"{'run':14s} {'mean':>6s} {'spread':>7s} {'std':>6s} {'first':>6s} {'seconds':>8s}")
    names = list(outputs)
    scores = np.zeros((len(names), len(layout.cores)))
    for j, (y0, x0) in enumerate(layout.cores):    # one call per region: the style once
        crop = (slice(y0, y0 + ch), slice(x0, x0 + cw))
        results = nstjax.score(vgg, content[crop], style, [outputs[n][crop] for n in names])
        scores[:, j] = [r.style["sliced_wasserstein"] for r in results]
    for name, s in zip(names, scores):
        print(f"{name:14s} {s.mean():6.3f} {s.max() - s.min():7.3f} {s.std():6.3f} "
              f"{s[0]:6.3f} {seconds[name]:8.1f}")
    ys = sorted({y for y, _ in layout.cores})
    xs = sorted({x for _, x in layout.cores})
    cy, cx = (ys[1] if len(ys) > 1 else h // 2), (xs[1] if len(xs) > 1 else w // 2)
    half = 48
    crops = [np.asarray(im)[max(cy - half, 0):cy + half, max(cx - half, 0):cx + half]
             for im in outputs.values()]
    crops = [c.repeat(3, 0).repeat(3, 1) for c in crops]
    sheet = pictures.labelled_grid(crops, list(outputs), cols=len(crops),
                                   cell=crops[0].shape[1])
    save_image(args.out_dir / "corner.png", sheet)
    print(f"wrote {args.out_dir / 'corner.png'}: the corner at ({cx}, {cy}) where four "
          "tiles meet", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
