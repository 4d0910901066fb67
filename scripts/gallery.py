#!/usr/bin/env python
"""The README gallery: what ``nstjax stylize`` makes with EVERY default, scored.

Four content:style pairs from ../shared/images (beside the repository), each run with the
command's defaults (``Objective()`` on a Laplacian pyramid of the image,
``loss_weights()``, ``Solver()``, init grey, the coarse-to-fine ladder of :data:`nstjax.run.multiscale.DEFAULT_SCALE_ITERS` from
:data:`~nstjax.run.multiscale.DEFAULT_MIN_SIZE` px, ``PRNGKey(0)``): the content and style are loaded at ``--size`` (long edge, default 256).
Each result is scored with ``nstjax.score`` and labelled with its sliced-Wasserstein style
distance relative to the content's own (``SW 0.40``: 1 = unstylised, 0 = the style's
feature statistics; lower = more stylised) and its luminance SSIM to the content (1 = the
content's structure kept).  Rows are pairs; columns content, style, result.

The picture is at most 960 px wide (panels ``min(size, 320)`` px) and written as a
palette PNG (256 colours, fewer if needed to stay under 400 KB) or as JPEG for a .jpg
output, so it stays small in git; it prints its size.

    python scripts/gallery.py                          # docs/gallery.png, 256 px
    python scripts/gallery.py --size 384 --output docs/gallery.png \\
        --pairs tubingen:starry_night brad_pitt:picasso_selfport1907
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import jax
import numpy as np
from PIL import Image

import nstjax
from nstjax.io import pictures
from nstjax.io.image_writing import to_uint8, write_bytes_atomic
from nstjax.run import multiscale

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO.parent / "shared" / "images"
PAIRS = ("tubingen:starry_night", "brad_pitt:picasso_selfport1907",
         "tubingen:woman-with-hat-matisse", "brad_pitt:seated-nude")
MAX_KB = 400                 # README pictures stay small in git
CELL = 320                   # widest panel: 3 columns, 960 px (never upscaled)


def resolve(name: str) -> Path:
    """A path, or a name (with or without extension) in ../shared/images."""
    for p in (Path(name), IMAGES / name, IMAGES / f"{name}.jpg"):
        if p.is_file():
            return p
    raise ValueError(f"{name}: no such image (nor in {IMAGES})")


def write_small(path: Path, image) -> Path:
    """A palette PNG of 256 colours, or fewer until it is under :data:`MAX_KB` (written
    atomically, like every nstjax image); any other format through ``save_image``."""
    if path.suffix.lower() != ".png":
        return nstjax.save_image(path, image)
    rgb = Image.fromarray(to_uint8(image))
    for colors in (256, 192, 128, 96):
        data = io.BytesIO()
        rgb.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(
            data, format="PNG", optimize=True)
        if data.tell() <= MAX_KB * 1024:
            break
    return write_bytes_atomic(path, data.getvalue(), what="the gallery")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256, help="long edge of content and style")
    p.add_argument("--output", type=Path, default=REPO / "docs" / "gallery.png",
                   help=".png (256 colours) or .jpg (default docs/gallery.png)")
    p.add_argument("--pairs", nargs="+", default=list(PAIRS),
                   help="content:style names in ../shared/images, or paths")
    p.add_argument("--weights", type=Path, help="vgg19.h5 (default: the library's)")
    args = p.parse_args(argv)
    try:
        return run(args)
    except (ValueError, nstjax.ImageError, nstjax.WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(args) -> int:
    if args.size < 16:
        raise ValueError("--size must be >= 16")
    pairs = []
    for item in args.pairs:
        c, sep, s = item.rpartition(":")
        if not sep or not c or not s:
            raise ValueError(f"--pairs: {item!r} is not content:style")
        pairs.append((resolve(c), resolve(s)))
    vgg = nstjax.load_vgg19(args.weights)
    panels, labels = [], []
    for c_path, s_path in pairs:
        content = nstjax.load_image(c_path, size=args.size)
        style = nstjax.load_image(s_path, size=args.size)
        t0 = time.perf_counter()
        rungs = len(multiscale.size_ladder(multiscale.DEFAULT_MIN_SIZE, max(content.shape[:2])))
        result = nstjax.stylize_multiscale(    # `nstjax stylize`'s defaults
            vgg, content, style, key=jax.random.PRNGKey(0), init="grey",
            objective=nstjax.Objective(parametrization=multiscale.DEFAULT_PARAMETRIZATION),
            min_size=multiscale.DEFAULT_MIN_SIZE, iters=multiscale.default_iterations(rungs))
        image = np.asarray(result.image)
        seconds = time.perf_counter() - t0
        sc = nstjax.score(vgg, content, style, [image])[0]
        sw = sc.style["sliced_wasserstein"]
        print(f"{c_path.stem} × {s_path.stem}: SW {sw:.3f}, Gram {sc.style['gram']:.3f}, "
              f"mean/cov {sc.style['mean_cov']:.3f}, relu4_2 {sc.content_error:.3f}, "
              f"SSIM {sc.ssim:.3f}, {int(result.n_iter)} it, {seconds:.1f} s", flush=True)
        panels += [content, style, image]
        labels += [c_path.stem, s_path.stem,
                   f"SW {sw:.2f}  SSIM {sc.ssim:.2f}"]
    grid = pictures.labelled_grid(panels, labels, cols=3, cell=min(CELL, args.size))
    path = write_small(args.output, grid)
    kb = path.stat().st_size / 1024
    print(f"wrote {path} ({grid.shape[1]}×{grid.shape[0]}, {kb:.0f} KB)"
          + (f"; over {MAX_KB} KB: try a .jpg output" if kb > MAX_KB else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
