#!/usr/bin/env python
"""Choose the TV weight by measurement: speckle removed, no blur.

    python scripts/measure_tv.py --pairs tubingen:starry_night brad_pitt:picasso_selfport1907 \
        --size 320 --tv 0 3 10 30 100 --out-dir out/tv

For each content:style pair, one ``nstjax.sweep`` over ``tv_weight`` with every other
default, then per member:

* **speckle**: the mean absolute difference between the image and its 3×3 median, per
  value (isolated single-pixel colours count fully; edges and strokes of more than one
  pixel barely);
* **sharpness**: the mean gradient magnitude of the image after a 2×2 average and
  subsampling (strokes and edges two pixels or wider: what blur removes);
* the style score (sliced Wasserstein relative to the photo's, ``nstjax.score``) and the
  relu4_2 content error.

Prints one table per pair (each column also relative to τ = 0) and writes the contact
sheet and a 4× crop of each member's centre (``crops_<pair>.png``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nstjax  # noqa: E402
from nstjax.io import pictures  # noqa: E402
from nstjax.io.image import load_image  # noqa: E402
from nstjax.io.image_writing import save_image  # noqa: E402

IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"


def speckle(x: np.ndarray) -> float:
    """Mean |x − median₃ₓ₃(x)| over the interior values."""
    h, w = x.shape[:2]
    stack = np.stack([x[dy:h - 2 + dy, dx:w - 2 + dx] for dy in range(3) for dx in range(3)])
    return float(np.mean(np.abs(x[1:-1, 1:-1] - np.median(stack, axis=0))))


def sharpness(x: np.ndarray) -> float:
    """Mean gradient magnitude at half resolution (2×2 averages)."""
    h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    y = x[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    gy, gx = np.diff(y, axis=0)[:, :-1], np.diff(y, axis=1)[:-1]
    return float(np.mean(np.sqrt(gy ** 2 + gx ** 2)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", nargs="+", default=["tubingen:starry_night"],
                   help="content:style names in --images (default tubingen:starry_night)")
    p.add_argument("--images", type=Path, default=IMAGES, help="folder of the images")
    p.add_argument("--size", type=int, default=384, help="long edge (default 384)")
    p.add_argument("--tv", type=float, nargs="+", default=[0, 3, 10, 30, 100],
                   help="TV weights to try (default 0 3 10 30 100)")
    p.add_argument("--iters", type=int, default=200, help="iterations (default 200)")
    p.add_argument("--out-dir", type=Path, default=Path("out/tv"), help="output folder")
    args = p.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    vgg = nstjax.load_vgg19()
    for pair in args.pairs:
        cname, sname = pair.split(":")
        content = load_image(next(args.images.glob(cname + ".*")), size=args.size)
        style = load_image(next(args.images.glob(sname + ".*")), size=args.size)
        res = nstjax.sweep(vgg, content, style, {"tv_weight": args.tv},
                           key=jax.random.PRNGKey(0), solver=nstjax.Solver(max_iter=args.iters))
        images = [np.asarray(im) for im in res.images]
        scores = nstjax.score(vgg, content, style, images)
        rows = [(speckle(im), sharpness(im), s.style["sliced_wasserstein"], s.content_error)
                for im, s in zip(images, scores)]
        base = rows[0]
        print(f"\n{pair} at {args.size} px, {args.iters} iterations "
              f"(photo: speckle {speckle(np.asarray(content)):.4f}, sharpness "
              f"{sharpness(np.asarray(content)):.4f})")
        print(f"{'tv weight':>9s} {'speckle':>14s} {'sharpness':>14s} {'SW':>6s} {'relu4_2':>7s}")
        for tv, (sp, sh, sw, ce) in zip(args.tv, rows):
            print(f"{tv:9g} {sp:.4f} ({sp / base[0]:4.2f}×) {sh:.4f} ({sh / base[1]:4.2f}×) "
                  f"{sw:6.3f} {ce:7.3f}")
        h, w = images[0].shape[:2]
        crops = [im[h // 2 - 32:h // 2 + 32, w // 2 - 32:w // 2 + 32].repeat(4, 0).repeat(4, 1)
                 for im in images]
        save_image(args.out_dir / f"crops_{cname}.png", pictures.labelled_grid(
            crops, [f"tv {tv:g}" for tv in args.tv], cols=len(crops), cell=256))
        save_image(args.out_dir / f"sheet_{cname}.png", pictures.labelled_grid(
            images, [f"tv {tv:g}" for tv in args.tv], cols=3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
