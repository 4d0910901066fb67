#!/usr/bin/env python
"""Flicker of video style transfer: independent frames vs sequential vs multi-pass.

Makes a synthetic clip (a camera panning and zooming over a photograph, with a textured
disc crossing it), computes the optical flow once (OpenCV DIS, both directions, Ruder et
al.'s consistency weights), and stylises it three ways with the same per-frame iteration
budget:

* ``independent``: every frame alone, from its content;
* ``sequential``: each frame from the previous output warped into it, with the short-term
  temporal loss (Ruder, Dosovitskiy, Brox 2016, eq. 7);
* ``multipass``: every frame at once, vmapped, in alternating sweeps (IJCV 2018 §4.5),
  ``--passes`` passes of ``--iters / --passes`` iterations.

It prints, per mode, the temporal error (the mean over frames of the flow-weighted squared
difference between output ``t`` and the warped output ``t − 1``, :func:`nstjax.video.temporal.
frame_errors`; the input clip's own value is the floor warping alone leaves), its ratio to
independent frames, the mean content and style terms (is it still stylised?), and the
seconds per frame (median over frames, first frame/chunk excluded: it compiles); and
writes a picture of a few frames side by side (rows: content, the three modes).

    python benchmarks/video_temporal.py --size 192 --frames 10 --iters 60
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np
from PIL import Image, ImageDraw

import nstjax
from nstjax.io.image import load_image
from nstjax.objective.config import Objective
from nstjax.video.driver import DEFAULT_TEMPORAL_WEIGHT
from nstjax.video.flow import flow_pairs
from nstjax.video.frames import to_uint8
from nstjax.video.temporal import frame_errors

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"


def synthetic_clip(photo: Path, sprite: Path, *, n: int, width: int, height: int):
    """``uint8[n, height, width, 3]``: a pan (left to right) and a zoom (in by 25 %) over
    ``photo``, with a disc cut from ``sprite`` moving across the frame."""
    big = load_image(photo, size=int(2.2 * width))
    bh, bw = big.shape[:2]
    disc_r = height // 6
    tex = load_image(sprite, shape=(2 * disc_r, 2 * disc_r))
    yy, xx = np.mgrid[-disc_r:disc_r, -disc_r:disc_r]
    inside = (yy ** 2 + xx ** 2 < disc_r ** 2)[..., None]
    frames = []
    for t in range(n):
        s = t / max(n - 1, 1)
        crop_w = width * 1.6 * (1 - 0.25 * s)
        crop_h = crop_w * height / width
        x0 = 0.05 * bw + s * 0.3 * bw
        y0 = (bh - crop_h) / 2
        img = Image.fromarray(to_uint8(big)).resize(
            (width, height), Image.Resampling.BILINEAR, box=(x0, y0, x0 + crop_w, y0 + crop_h))
        frame = np.asarray(img, np.float32) / 255.0
        cx = int(disc_r + s * (width - 2 * disc_r))
        cy = int(height * 0.65)
        window = frame[cy - disc_r:cy + disc_r, cx - disc_r:cx + disc_r]
        frame[cy - disc_r:cy + disc_r, cx - disc_r:cx + disc_r] = np.where(inside, tex, window)
        frames.append(to_uint8(frame))
    return np.stack(frames)


def run_mode(vgg, frames, style, flows, mode, args):
    solver = nstjax.Solver(max_iter=args.iters)
    kw = dict(key=jax.random.PRNGKey(0), mode=mode, flows=flows, objective=Objective(),
              solver=solver, temporal_weight=args.temporal_weight, passes=args.passes,
              chunk=args.chunk)
    started = time.perf_counter()
    result = nstjax.stylize_video(vgg, frames, style, **kw)
    wall = time.perf_counter() - started
    seconds = result.seconds[1:] if mode != "multipass" else result.seconds[args.chunk:]
    return result, wall, float(np.median(seconds if seconds.size else result.seconds))


def side_by_side(rows, labels, picks, path: Path) -> None:
    h, w = rows[0].shape[1:3]
    label_w = 90
    sheet = Image.new("RGB", (label_w + w * len(picks), h * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (frames, label) in enumerate(zip(rows, labels)):
        draw.text((4, r * h + h // 2 - 6), label, fill="black")
        for c, i in enumerate(picks):
            sheet.paste(Image.fromarray(frames[i]), (label_w + c * w, r * h))
    for c, i in enumerate(picks):
        draw.text((label_w + c * w + 4, 2), f"frame {i}", fill="white")
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
                   ).save(path, optimize=True)   # a palette PNG: a small file for the docs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photo", default=str(SHARED / "tubingen.jpg"))
    p.add_argument("--sprite", default=str(SHARED / "escher_sphere.jpg"))
    p.add_argument("--style", default=str(SHARED / "starry_night.jpg"))
    p.add_argument("--size", type=int, default=192, help="frame width")
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--iters", type=int, default=60, help="iterations per frame (all modes)")
    p.add_argument("--passes", type=int, default=4)
    p.add_argument("--chunk", type=int, default=5, help="multipass: frames per program")
    p.add_argument("--temporal-weight", type=float,
                   default=DEFAULT_TEMPORAL_WEIGHT)
    p.add_argument("--modes", nargs="+", default=["independent", "sequential", "multipass"])
    p.add_argument("--picture", default="docs/video_frames.png")
    args = p.parse_args()

    width, height = args.size, args.size * 2 // 3
    frames = synthetic_clip(Path(args.photo), Path(args.sprite), n=args.frames, width=width,
                            height=height)
    style = load_image(args.style, size=width)
    vgg = nstjax.load_vgg19()
    t = time.perf_counter()
    flows = {1: flow_pairs(frames, gap=1)}
    flow_s = time.perf_counter() - t
    pairs = flows[1]
    floor = float(np.mean(frame_errors(frames / 255.0, pairs.back, pairs.back_weights)))
    print(f"clip: {args.frames} frames of {width}×{height} (pan + zoom over {Path(args.photo).name}"
          f", a disc crossing); flow (DIS, both ways) {flow_s:.2f} s; reliable pixels "
          f"{float(pairs.back_weights[1:].mean()):.1%}; the input's own temporal error "
          f"{floor:.2e}")
    print(f"style {Path(args.style).name}, {args.iters} iterations per frame (multipass: "
          f"{args.passes} passes × {max(1, args.iters // args.passes)}), temporal weight "
          f"{args.temporal_weight:g}, device {jax.devices()[0]}\n")
    print("| mode | temporal error | vs independent | content | style | s/frame | wall s |")
    print("|---|---|---|---|---|---|---|")
    rows, base = [frames], None
    for mode in args.modes:
        result, wall, per_frame = run_mode(vgg, frames, style, flows, mode, args)
        base = result.temporal_error if base is None else base
        print(f"| {mode} | {result.temporal_error:.2e} | {result.temporal_error / base:.2f} | "
              f"{np.nanmean(result.terms['content']):.3g} | "
              f"{np.nanmean(result.terms['style']):.3g} | {per_frame:.2f} | {wall:.1f} |",
              flush=True)
        rows.append(result.frames)
    picks = sorted({0, args.frames // 3, 2 * args.frames // 3, args.frames - 1})
    side_by_side(rows, ["content"] + list(args.modes), picks, Path(args.picture))
    print(f"\nwrote {args.picture}")


if __name__ == "__main__":
    main()
