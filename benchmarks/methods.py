"""The field's recipes side by side: nstjax's default and every ``--preset`` on the
held-out photo × painting pairs of :mod:`pairs`, one grid.

Each method runs as ``nstjax stylize --preset NAME`` in its own process (reused when its
image exists under ``--folder``), and the table per pair gives: style distance by ``nstjax
score`` (sliced Wasserstein on VGG features, relative: 1 = the photo, 0 = the painting), the
pixel-patch distance of :mod:`measures` (no network, no nstjax loss), the relu4_2 content
error, chroma speckle relative to the painting, and seconds (with ``--pin`` every process
runs on one core, so the times compare when the machine is busy).  Where the classic-look
benchmark's PyTorch reference image exists (``benchmarks/classic_look.py`` with torch), it
is scored in the same table.  Writes ``docs/methods.png``: rows are pairs, columns the
photo and painting, then each method at full size.

    python benchmarks/methods.py --size 256 --pairs astronaut-starry coffee-matisse --pin
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

METHODS = (("default", ""), ("classic", "--preset classic"), ("crowsonkb", "--preset crowsonkb"),
           ("strotss", "--preset strotss"), ("nnst", "--preset nnst"))


def _run(cmd, pin: bool) -> float:
    cmd = (["taskset", "-c", "1"] if pin else []) + cmd
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--pairs", nargs="*", help="pair names (default all)")
    p.add_argument("--methods", nargs="*", help="method names (default all)")
    p.add_argument("--folder", default="out/classic")
    p.add_argument("--pin", action="store_true", help="every run on core 1 (taskset)")
    p.add_argument("--figure", default="docs/methods.png", help="'' for none")
    a = p.parse_args(argv)
    import nstjax

    vgg = nstjax.load_vgg19()
    methods = [m for m in METHODS if not a.methods or m[0] in a.methods]
    figure, summary = [], {}
    for name, c_path, s_path in pairs.prepare(a.size, Path(a.folder), a.pairs):
        d = c_path.parent
        rows = []
        ref = d / "reference.png"
        if ref.exists():
            rows.append(("neural-style (torch)", ref,
                         json.loads(Path(str(ref) + ".json").read_text())["seconds"]))
        for method, flags in methods:
            out = d / f"method-{method}.png"
            secs_file = Path(str(out) + ".seconds")
            if not out.exists():
                secs = _run(["nstjax", "stylize", "--content", str(c_path), "--style",
                             str(s_path), "--output", str(out), "--size", str(a.size),
                             "--log-every", "100000", *shlex.split(flags)], a.pin)
                secs_file.write_text(f"{secs:.2f}")
            rows.append((method, out, float(secs_file.read_text())))
        content, style = nstjax.load_image(c_path), nstjax.load_image(s_path)
        images = [nstjax.load_image(r[1]) for r in rows]
        scores = nstjax.score(vgg, content, style, images)
        style_at = nstjax.load_image(s_path, shape=content.shape[:2])
        print(f"\n{name} at {a.size} px")
        print(f"{'method':<22}{'SW (score)':>11}{'patch':>8}{'content':>9}{'speckle':>9}"
              f"{'seconds':>9}")
        for (method, _, secs), sc, im in zip(rows, scores, images):
            values = (sc.style["sliced_wasserstein"], measures.patch_distance(im, content, style),
                      sc.content_error, measures.speckle(im, style_at), secs)
            summary.setdefault(method, []).append(values)
            print(f"{method:<22}{values[0]:>11.3f}{values[1]:>8.3f}{values[2]:>9.3f}"
                  f"{values[3]:>9.2f}{values[4]:>9.1f}")
        figure.append((c_path, s_path, [(r[0], r[1]) for r in rows]))
    print(f"\ngeometric means over {len(figure)} pairs at {a.size} px")
    print(f"{'method':<22}{'SW (score)':>11}{'patch':>8}{'content':>9}{'speckle':>9}"
          f"{'seconds':>9}")
    for method, values in summary.items():
        g = np.exp(np.mean(np.log(np.maximum(np.asarray(values), 1e-6)), axis=0))
        print(f"{method:<22}{g[0]:>11.3f}{g[1]:>8.3f}{g[2]:>9.3f}{g[3]:>9.2f}{g[4]:>9.1f}")
    if a.figure and figure:
        grid(figure, Path(a.figure), a.size)
        print(f"\nwrote {a.figure}")
    return 0


def grid(rows, path: Path, size: int) -> None:
    """Rows: pairs; columns: the photo above the painting (half size), then each method's
    result at full size, labelled."""
    from PIL import Image, ImageDraw

    pad, head, half = 4, 18, size // 2
    labels = ["photo, painting"] + [label for label, _ in rows[0][2]]
    widths = [half] + [size] * (len(labels) - 1)
    xs = [sum(widths[:k]) + k * pad for k in range(len(widths))]
    sheet = Image.new("RGB", (xs[-1] + widths[-1], head + len(rows) * (size + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for x, label in zip(xs, labels):
        draw.text((x + 2, 3), label, fill="black")
    for r, (photo, painting, results) in enumerate(rows):
        y = head + r * (size + pad)
        for k, f in enumerate((photo, painting)):
            im = Image.open(f).convert("RGB")
            im.thumbnail((half, half - pad // 2))
            sheet.paste(im, (0, y + k * (half + pad // 2)))
        for k, (_, f) in enumerate(results):
            sheet.paste(Image.open(f).convert("RGB"), (xs[1 + k], y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(256, dither=Image.FLOYDSTEINBERG).save(path, optimize=True)  # ~1/3 the bytes


if __name__ == "__main__":
    sys.exit(main())
