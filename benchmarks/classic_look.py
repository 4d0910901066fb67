"""nstjax beside jcjohnson/neural-style's defaults on held-out photo × painting pairs.

For each pair of :mod:`pairs` at each ``--size``, runs (or reuses, when its files exist) the
PyTorch reference (``benchmarks/reference/neural_style.py``, 500 iterations) and nstjax's
command-line defaults, plus any ``--candidate NAME='flags'`` given, each in its own process,
and prints one table per pair: style distance by ``nstjax score`` (sliced Wasserstein on VGG
features, relative: 1 = the photo, 0 = the painting), by the pixel-patch distance of
:mod:`measures` (no network, no nstjax loss), the relu4_2 content error, the chroma speckle
relative to the painting, and seconds.  Pass ``--pin`` to run every process on one core
(``taskset -c 0``), so that the times compare on the same CPU even when the machine is busy.

    python benchmarks/classic_look.py --size 256 --candidate classic-ladder='--style-layer-weights 128,32,8,2,2 --init grey --min-size 128 --scale-iters 150,60,40'
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import measures  # noqa: E402
import pairs  # noqa: E402


def _run(cmd, pin):
    cmd = (["taskset", "-c", "1"] if pin else []) + cmd
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, nargs="+", default=[256])
    p.add_argument("--pairs", nargs="*", help="pair names (default all)")
    p.add_argument("--folder", default="out/classic")
    p.add_argument("--candidate", action="append", default=[], metavar="NAME='FLAGS'")
    p.add_argument("--pin", action="store_true", help="every run on core 1 (taskset)")
    p.add_argument("--figure", default="docs/classic_look.png",
                   help="where to write the side-by-side picture of the first --size "
                   "('' for none)")
    a = p.parse_args(argv)
    import nstjax

    vgg = nstjax.load_vgg19()
    methods = [("default", "")] + [tuple(c.split("=", 1)) for c in a.candidate]
    figure_rows = []
    for size in a.size:
        for name, c_path, s_path in pairs.prepare(size, Path(a.folder), a.pairs):
            d = c_path.parent
            ref = d / "reference.png"
            rows = []
            if not ref.exists():
                _run([sys.executable, str(HERE / "reference" / "neural_style.py"), str(c_path),
                      str(s_path), str(ref), "--threads", "1" if a.pin else "0"], a.pin)
            rows.append(("reference", ref, json.loads(Path(str(ref) + ".json").read_text())
                         ["seconds"]))
            for method, flags in methods:
                out = d / f"{method}.png"
                secs_file = Path(str(out) + ".seconds")
                if not out.exists():
                    secs = _run(["nstjax", "stylize", "--content", str(c_path), "--style",
                                 str(s_path), "--output", str(out), "--size", str(size),
                                 "--log-every", "100000", *shlex.split(flags)], a.pin)
                    secs_file.write_text(f"{secs:.2f}")
                rows.append((method, out, float(secs_file.read_text())))
            content = nstjax.load_image(c_path)
            style = nstjax.load_image(s_path)
            images = [nstjax.load_image(r[1]) for r in rows]
            scores = nstjax.score(vgg, content, style, images)
            style_at = nstjax.load_image(s_path, shape=content.shape[:2])
            print(f"\n{name} at {size} px")
            print(f"{'method':<18}{'SW (score)':>11}{'patch':>8}{'content':>9}{'speckle':>9}"
                  f"{'seconds':>9}{'× ref':>7}")
            sw, patch = [], []
            for (method, _, secs), sc, im in zip(rows, scores, images):
                sw.append(sc.style["sliced_wasserstein"])
                patch.append(measures.patch_distance(im, content, style))
                print(f"{method:<18}{sw[-1]:>11.3f}{patch[-1]:>8.3f}"
                      f"{sc.content_error:>9.3f}{measures.speckle(im, style_at):>9.2f}"
                      f"{secs:>9.1f}{secs / rows[0][2]:>7.2f}")
            if len(rows) > 2:
                print(f"Spearman rank correlation of SW with the patch distance over these "
                      f"{len(rows)} results: {spearman(sw, patch):.2f}")
            if size == a.size[0]:
                figure_rows.append([c_path, s_path, ref, d / "default.png"])
    if a.figure and figure_rows:
        side_by_side(figure_rows, Path(a.figure), a.size[0])
        print(f"\nwrote {a.figure}")
    return 0


def spearman(a, b) -> float:
    """Spearman's rank correlation of two sequences (ties get their mean rank)."""
    def ranks(x):
        x = np.asarray(x, float)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for v in np.unique(x):
            r[x == v] = r[x == v].mean()
        return r
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def side_by_side(rows, path: Path, size: int, crop: int = 64) -> None:
    """One row per pair: the photo above the painting (half size), the reference and
    nstjax's default at full size, then 4× crops (nearest neighbour) of their centres,
    ``crop`` px square."""
    from PIL import Image, ImageDraw

    cell, pad, head, half = size, 4, 18, size // 2
    labels = ("photo, painting", "neural-style (500 it.)", "nstjax default",
              "neural-style 4x crop", "nstjax 4x crop")
    widths = (half,) + (cell,) * 4
    xs = [sum(widths[:k]) + k * pad for k in range(len(widths))]
    sheet = Image.new("RGB", (xs[-1] + cell, head + len(rows) * (cell + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for x, label in zip(xs, labels):
        draw.text((x + 2, 3), label, fill="black")
    for r, (photo, painting, ref, ours) in enumerate(rows):
        y = head + r * (cell + pad)
        inputs = [Image.open(f).convert("RGB") for f in (photo, painting)]
        for k, im in enumerate(inputs):
            im.thumbnail((half, half - pad // 2))
            sheet.paste(im, (0, y + k * (half + pad // 2)))
        results = [Image.open(f).convert("RGB") for f in (ref, ours)]
        for k, im in enumerate(results):
            sheet.paste(im, (xs[1 + k], y))
            w, h = im.size
            box = ((w - crop) // 2, (h - crop) // 2, (w + crop) // 2, (h + crop) // 2)
            sheet.paste(im.crop(box).resize((4 * crop, 4 * crop), Image.NEAREST),
                        (xs[3 + k], y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)


if __name__ == "__main__":
    sys.exit(main())
