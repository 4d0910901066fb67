#!/usr/bin/env python
"""Style methods side by side at EQUAL WALL TIME: content × style × method, scored.

Every cell (one content, one style, one ``--style-loss`` spec and style weight) runs
``nstjax.stylize`` with a huge iteration limit and stops after ``--seconds`` of solving
(``Callbacks(should_stop=...)``, checked between compiled chunks of about 0.25 s and at
least one iteration, so a cell overruns by up to one chunk: ``solve_s`` is the real time).
Compilation is kept out of the budget: each cell first runs a warm-up solve stopped after
its first iteration, reported as ``compile_s`` (compilation + targets + one iteration; only
about one iteration when an earlier cell compiled the same program: same method, optimiser
and image shapes).  ``solve_s`` is the timed solve (targets, iterations, final terms),
``cpu_s`` this process's CPU time in it (fairer on a shared machine), ``iters`` its
iterations.

Scores (``nstjax.score`` at the image's own size; nstjax/evaluate/score.py): style
distances RELATIVE to the content's own (1 = unstylised, 0 = the style's; lower = more
stylised) by sliced Wasserstein (SW), Gram and mean/covariance (MC); content fidelity as the
relu4_2 relative error (lower = closer) and luminance SSIM (higher = closer).  Each measure
flatters the losses that optimise its statistic (table in score.py): read them all.

Writes ``<output-dir>/cells/*.png`` (each result), ``compare.json`` (strict JSON: settings,
scores, timings, iterations per cell) and ``compare.png`` (rows: content × style pairs with
their thumbnails at the left; columns: methods; scores under each cell), and prints a table.

    python benchmarks/style_methods.py --contents ../shared/images/tubingen.jpg \\
        --styles ../shared/images/starry_night.jpg --methods gram gaussian-w2 \\
        --size 256 --seconds 60 --output-dir out/compare
    python benchmarks/style_methods.py --pairs tubingen:starry_night --methods gram \\
        --sweep-style-weight 10,30,100   # one column per weight; names: ../shared/images
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
from PIL import Image, ImageDraw, ImageFont

import nstjax
from nstjax.io import jsonio, pictures
from nstjax.io.image_writing import to_uint8, write_text_atomic
from nstjax.run.transfer import INITS

IMAGES = Path(__file__).resolve().parent.parent.parent / "shared" / "images"
MAX_ITER = 100_000           # never reached at these budgets: the clock stops every cell
DEFAULT_STYLE_WEIGHT = inspect.signature(nstjax.loss_weights).parameters["style_weight"].default
MEASURES = (("SW", "sliced_wasserstein"), ("Gram", "gram"), ("MC", "mean_cov"))


def resolve(name: str) -> Path:
    """A path, or a bare name (with or without extension) in ../shared/images."""
    for p in (Path(name), IMAGES / name, IMAGES / f"{name}.jpg"):
        if p.is_file():
            return p
    raise ValueError(f"{name}: no such image (nor in {IMAGES})")


def parse_pairs(args) -> list[tuple[Path, Path]]:
    if args.pairs:
        if args.contents or args.styles:
            raise ValueError("give --pairs or --contents/--styles, not both")
        pairs = []
        for item in args.pairs:
            c, sep, s = item.rpartition(":")
            if not sep or not c or not s:
                raise ValueError(f"--pairs: {item!r} is not content:style")
            pairs.append((resolve(c), resolve(s)))
        return pairs
    if not args.contents or not args.styles:
        raise ValueError("give --contents and --styles (or --pairs content:style ...)")
    return [(resolve(c), resolve(s)) for c in args.contents for s in args.styles]


def parse_columns(args) -> list[dict]:
    """One column per method (and per swept style weight); every spec checked up front."""
    weights = args.style_weight or [DEFAULT_STYLE_WEIGHT]
    if args.sweep_style_weight:
        if args.style_weight:
            raise ValueError("give --style-weight or --sweep-style-weight, not both")
        weights = [float(w) for w in re.split(r"[,\s]+", args.sweep_style_weight.strip()) if w]
        per_method = [weights] * len(args.methods)
    elif len(weights) == 1:
        per_method = [weights] * len(args.methods)
    elif len(weights) == len(args.methods):
        per_method = [[w] for w in weights]
    else:
        raise ValueError(f"--style-weight: {len(weights)} values for {len(args.methods)} "
                         "methods (give one, or one per method)")
    columns = []
    for spec, ws in zip(args.methods, per_method):
        try:
            names, mix = nstjax.parse_style_spec(spec)
            objective = nstjax.Objective(style_losses=names)
            for w in ws:
                columns.append({"method": spec, "style_weight": w, "objective": objective,
                                "weights": nstjax.loss_weights(objective, style_weight=w,
                                                               style_mix=mix)})
        except ValueError as e:
            raise ValueError(f"--methods {spec!r}: {e}") from None
    return columns


def run_cell(vgg, content, style, col, solver, init, key, seconds):
    """``(TransferResult, compile_s, solve_s, cpu_s)`` of one equal-time cell."""
    kw = dict(key=key, objective=col["objective"], weights=col["weights"], solver=solver,
              init=init)
    t0 = time.perf_counter()
    warm = nstjax.stylize(vgg, content, style, **kw,
                          callbacks=nstjax.Callbacks(should_stop=lambda: True))
    jax.block_until_ready(warm.image)
    compile_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    result = nstjax.stylize(vgg, content, style, **kw, callbacks=nstjax.Callbacks(
        should_stop=lambda: time.perf_counter() - t0 >= seconds))
    jax.block_until_ready(result.image)
    return result, compile_s, time.perf_counter() - t0, time.process_time() - c0


def score_lines(cell) -> list[str]:
    s = cell["scores"]
    fmt = lambda v: "nan" if v is None else f"{v:.3f}"  # noqa: E731
    return [" ".join(f"{k} {fmt(s[m])}" for k, m in MEASURES),
            f"relu4_2 {fmt(s['content_error'])}  SSIM {fmt(s['ssim'])}",
            f"{cell['iters']} it in {cell['solve_s']:.1f} s"]


def captioned(image, above, below, width, height) -> np.ndarray:
    """``image`` on a white ``width × height`` panel, text lines above and below it.
    (pictures.labelled_grid captions one line; contact_sheet labels numbers only.)"""
    im = Image.new("RGB", (width, height), "white")
    top = 12 * len(above) + 2
    im.paste(Image.fromarray(to_uint8(image)), (0, top))
    draw, font = ImageDraw.Draw(im), ImageFont.load_default()
    for j, text in enumerate(above):
        draw.text((2, 12 * j), text, fill="black", font=font)
    for j, text in enumerate(below):
        draw.text((2, top + image.shape[0] + 2 + 12 * j), text, fill="black", font=font)
    return np.asarray(im, np.float32) / 255.0


def sheet(cells, pairs, columns, thumbs, args) -> np.ndarray:
    """Rows: pairs (content and style thumbnails first); columns: methods; a legend on top."""
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = [score_lines(c) for c in cells]
    names = [f"{col['method']}, style weight {col['style_weight']:g}" for col in columns]
    width = max([args.size] + [measure.textbbox((0, 0), t, font=font)[2] + 8
                               for t in names + [t for ls in lines for t in ls]])
    height = args.size + 12 * (1 + len(lines[0])) + 6
    panels = []
    for r, (c_path, s_path) in enumerate(pairs):
        for thumb, text in zip(thumbs[r], (f"content {c_path.stem}", f"style {s_path.stem}")):
            panels.append(captioned(thumb, [text], [], width, height))
        for k in range(len(columns)):
            i = r * len(columns) + k
            panels.append(captioned(cells[i]["image"], [names[k]], lines[i], width, height))
    cols = len(columns) + 2
    grid = pictures.labelled_grid(panels, [""] * len(panels), cols=cols, cell=width)
    legend = [f"Equal wall time: {args.seconds:g} s of solving per cell (compilation excluded), "
              f"{args.size} px, {args.optimizer}, init {args.init}.",
              "SW / Gram / MC: style distance relative to the content's own (1 = unstylised, "
              "0 = the style's; lower = more stylised).",
              "relu4_2: content feature error (lower = closer); SSIM of the luminance "
              "(higher = closer); it: iterations done in the budget."]
    legend = [t for line in legend for t in textwrap.wrap(line, max(40, grid.shape[1] // 6))]
    head = captioned(np.ones((1, 1, 3), np.float32), legend, [], grid.shape[1],
                     12 * len(legend) + 6)
    return np.concatenate([head, grid], axis=0)


def main(argv=None) -> int:
    solver_defaults = nstjax.Solver()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--contents", nargs="+", help="content images (paths or names)")
    p.add_argument("--styles", nargs="+", help="style images; every content × every style")
    p.add_argument("--pairs", nargs="+", help="content:style pairs instead")
    p.add_argument("--methods", nargs="+", default=["gram"],
                   help='--style-loss specs, e.g. gram gaussian-w2 "bn:0.5,mmd-poly:0.5"')
    p.add_argument("--style-weight", nargs="+", type=float,
                   help=f"one for all methods or one per method (default {DEFAULT_STYLE_WEIGHT:g})")
    p.add_argument("--sweep-style-weight", metavar="W1,W2,...",
                   help="one column per style weight for each method (e.g. 10,30,100)")
    p.add_argument("--size", type=int, default=256, help="long edge of content and style")
    p.add_argument("--seconds", type=float, default=60.0,
                   help="solve wall time per cell, compilation excluded (default 60)")
    p.add_argument("--optimizer", default=solver_defaults.optimizer,
                   help=f"{', '.join(nstjax.optimizer_names())} (default {solver_defaults.optimizer})")
    p.add_argument("--init", default="content", help=f"{', '.join(INITS)} or an image file")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    p.add_argument("--weights", type=Path, help="vgg19.h5 (default: the library's)")
    p.add_argument("--output-dir", type=Path, default=Path("out/compare"))
    args = p.parse_args(argv)
    try:
        return run(args)
    except (ValueError, nstjax.ImageError, nstjax.WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(args) -> int:
    if args.seconds <= 0 or args.size < 16:
        raise ValueError("--seconds must be > 0 and --size >= 16")
    pairs, columns = parse_pairs(args), parse_columns(args)
    solver = nstjax.Solver(optimizer=args.optimizer, max_iter=MAX_ITER)
    init = args.init if args.init in INITS else resolve(args.init)
    out = args.output_dir
    (out / "cells").mkdir(parents=True, exist_ok=True)
    vgg = nstjax.load_vgg19(args.weights)
    key = jax.random.PRNGKey(args.seed)
    cells, thumbs = [], []
    for c_path, s_path in pairs:
        content = nstjax.load_image(c_path, size=args.size)
        style = nstjax.load_image(s_path, size=args.size)
        thumbs.append((content, style))
        x0 = init if isinstance(init, str) else \
            nstjax.load_image(init, shape=content.shape[:2])
        for k, col in enumerate(columns):
            print(f"{c_path.stem} × {s_path.stem}: {col['method']} "
                  f"(style weight {col['style_weight']:g}) ...", file=sys.stderr, flush=True)
            result, compile_s, solve_s, cpu_s = run_cell(vgg, content, style, col, solver,
                                                         x0, key, args.seconds)
            image = np.asarray(result.image)
            t0 = time.perf_counter()
            sc = nstjax.score(vgg, content, style, [image])[0]
            name = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{c_path.stem}__{s_path.stem}__{k:02d}_"
                          f"{col['method']}_w{col['style_weight']:g}")
            path = nstjax.save_image(out / "cells" / f"{name}.png", image)
            cells.append({
                "content": str(c_path), "style": str(s_path), "method": col["method"],
                "style_losses": list(col["objective"].style_losses),
                "style_mix": col["weights"].style_mix, "style_weight": col["style_weight"],
                "shape": list(image.shape[:2]), "image": image, "path": str(path),
                "scores": {**sc.style, "content_error": sc.content_error, "ssim": sc.ssim},
                "style_per_layer": sc.style_per_layer, "iters": int(result.n_iter),
                "status": nstjax.Status(int(result.status)).name.lower(),
                "loss": float(result.loss), "terms": result.terms,
                "compile_s": compile_s, "solve_s": solve_s, "cpu_s": cpu_s,
                "score_s": time.perf_counter() - t0})
    record = {"settings": {"size": args.size, "seconds": args.seconds,
                           "optimizer": args.optimizer, "init": str(args.init),
                           "seed": args.seed, "max_iter": MAX_ITER,
                           "device": str(jax.devices()[0]), "jax": jax.__version__},
              "cells": [{k: v for k, v in c.items() if k != "image"} for c in cells]}
    write_text_atomic(out / "compare.json", jsonio.dumps(record, indent=2))
    nstjax.save_image(out / "compare.png", sheet(cells, pairs, columns, thumbs, args))
    print_table(cells)
    print(f"wrote {out / 'compare.json'}, {out / 'compare.png'} and {len(cells)} images in "
          f"{out / 'cells'}")
    return 0


def print_table(cells) -> None:
    head = (f"{'content × style':<34} {'method':<24} {'weight':>7} {'SW':>6} {'Gram':>6} "
            f"{'MC':>6} {'relu42':>6} {'SSIM':>6} {'iters':>6} {'compile':>8} {'solve':>7} "
            f"{'cpu':>7}  status")
    print(head)
    print("-" * len(head))
    for c in cells:
        s = {k: (float("nan") if v is None else v) for k, v in c["scores"].items()}
        pair = f"{Path(c['content']).stem} × {Path(c['style']).stem}"
        print(f"{pair:<34} {c['method']:<24} {c['style_weight']:>7g} "
              f"{s['sliced_wasserstein']:6.3f} {s['gram']:6.3f} {s['mean_cov']:6.3f} "
              f"{s['content_error']:6.3f} {s['ssim']:6.3f} {c['iters']:6d} "
              f"{c['compile_s']:7.1f}s {c['solve_s']:6.1f}s {c['cpu_s']:6.1f}s  {c['status']}")


if __name__ == "__main__":
    sys.exit(main())
