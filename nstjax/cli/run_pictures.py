"""``nstjax stylize``'s spatial control and pictures of the run: masks, animation, loss curve.

Kept beside :mod:`nstjax.cli.stylize` so that the command stays a thin sequence of steps:

* ``--style-mask a.png b.png`` (one per style image, white where that style applies, grey
  blends) and ``--content-mask keep.png`` (white stays photographic), read as greyscale
  (EXIF orientation applied), resampled to the output's size and handed to
  :func:`nstjax.stylize` (:mod:`nstjax.objective.masks` carries them down the network);
  ``--mask-mode average|inside``;
* frames: the solve's snapshots (every ``--save-every`` iterations, or a default period)
  are kept in memory as 8-bit images; ``--animation out.webp|out.gif`` writes them, and
  the final image, as an animated picture;
* ``<output stem>_loss.png``: the total objective and its weighted content, style (and TV)
  terms at every iteration, on a log axis, as the solve recorded them (the objective
  returns its terms beside its value, from the evaluations the optimiser makes anyway).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from nstjax.cli import common
from nstjax.cli.common import UsageError
from nstjax.io import pictures
from nstjax.io.image_writing import save_image, to_uint8
from nstjax.io.pictures import ANIMATION_FORMATS

ANIMATION_FRAMES = 40      # default number of animation frames without --save-every
LOSS_SUFFIX = "_loss.png"


def add_arguments(p) -> None:
    g = p.add_argument_group("masks (Gatys et al. 2017) and pictures of the run")
    g.add_argument("--style-mask", nargs="+", help="one greyscale mask per style image "
                   "(white: that style applies; grey blends), over the output")
    g.add_argument("--content-mask", help="greyscale mask, white = keep photographic (no "
                   "style statistic sees a kept pixel: the style losses do not move it)")
    g.add_argument("--mask-mode", choices=("average", "inside"),
                   help="how masks reach deeper layers: average-pooled (default; styles "
                   "blend across a seam by the receptive field) or eroded to the positions "
                   "that see only the mask (no style acts outside its mask)")
    g.add_argument("--animation", help="also write the run as an animated .webp or .gif "
                   "(frames every --save-every iterations, or 40 frames)")


def loss_curve_path(out: Path) -> Path:
    return out.with_name(out.stem + LOSS_SUFFIX)


def check(args, out: Path, protect) -> None:
    """Validate the flags and write-test the extra outputs, before any work (``protect``:
    the run's input files)."""
    n_styles = 1 if args.demo else len(args.style or ())
    if args.style_mask is not None:
        if args.demo:
            raise UsageError("--style-mask needs --style images (not --demo)")
        if len(args.style_mask) != n_styles:
            raise UsageError(f"--style-mask: {len(args.style_mask)} mask(s) for {n_styles} "
                             "style image(s); give one mask per style image")
    if args.mask_mode is not None and args.style_mask is None and args.content_mask is None:
        raise UsageError("--mask-mode needs --style-mask or --content-mask")
    for path in list(args.style_mask or ()) + [args.content_mask] * bool(args.content_mask):
        if not Path(path).is_file():
            raise UsageError(f"{path}: no such mask file")
    inputs = list(protect) + mask_paths(args)
    extra = [loss_curve_path(out)]
    common.refuse_overwriting_inputs([out], mask_paths(args))
    if args.animation:
        anim = Path(args.animation)
        if anim.suffix.lower() not in ANIMATION_FORMATS:
            raise UsageError(f"--animation {anim}: write .webp or .gif")
        if anim.resolve() == Path(out).resolve():
            raise UsageError(f"--animation {anim} is the --output image; give another name")
        extra.append(anim)
    common.refuse_overwriting_inputs(extra, inputs)
    common.check_output(extra[0], inputs)
    if args.animation:
        common.ensure_writable_dir(Path(args.animation).resolve().parent)


def mask_paths(args) -> list[Path]:
    return [Path(p) for p in (args.style_mask or ())] + \
        ([Path(args.content_mask)] if args.content_mask else [])


def load_mask(path, shape: tuple[int, int]) -> np.ndarray:
    """A mask file as ``f32[H, W]`` in [0, 1]: upright, greyscale, resized to ``shape``.
    Refuses (one line) a file that is not an image or whose aspect ratio differs from the
    output's by more than 2 %.
    """
    h, w = shape
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if abs((im.width / im.height) / (w / h) - 1) > 0.02:
                raise UsageError(f"{path}: the mask is {im.width}×{im.height}, another aspect "
                                 f"ratio than the {w}×{h} output")
            grey = im.convert("L").resize((w, h), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError) as e:
        raise UsageError(f"{path}: not a readable image ({e})") from None
    return np.asarray(grey, np.float32) / 255.0


def mask_arguments(args, shape: tuple[int, int]) -> dict:
    """Keyword arguments of :func:`nstjax.stylize` for the masks (empty without masks)."""
    if args.style_mask is None and args.content_mask is None:
        return {}
    kw = {"mask_mode": args.mask_mode or "average"}
    if args.style_mask is not None:
        kw["style_masks"] = [load_mask(p, shape) for p in args.style_mask]
    if args.content_mask is not None:
        kw["content_mask"] = load_mask(args.content_mask, shape)
    return kw


def frame_period(args, max_iter: int) -> int:
    """Iterations between frames: ``--save-every``, else :data:`ANIMATION_FRAMES` frames
    for ``--animation``, else 0 (no frames: the loss curve needs none)."""
    if args.save_every:
        return args.save_every
    if args.animation:
        return max(1, math.ceil(max_iter / ANIMATION_FRAMES))
    return 0


class Frames:
    """The solve's snapshots as 8-bit frames in memory: ``(iteration, uint8[H, W, 3])``."""
    def __init__(self):
        self.items: list[tuple[int, np.ndarray]] = []

    def __call__(self, i: int, x) -> None:
        self.items.append((int(i), to_uint8(np.asarray(x))))


def animation_frames(frames: Frames, final, n_iter: int) -> list[np.ndarray]:
    """The frames (resized to the final size where a coarse-to-fine rung differs) and
    the final image, unless the last frame already is it."""
    last = to_uint8(np.asarray(final))
    h, w = last.shape[:2]
    out = []
    for _, f in frames.items:
        if f.shape[:2] != (h, w):
            f = np.asarray(Image.fromarray(f).resize((w, h), Image.Resampling.BICUBIC))
        out.append(f)
    if not frames.items or frames.items[-1][0] != n_iter:
        out.append(last)
    return out


def term_series(result) -> dict:
    """``{term: (iterations, values)}``: the weighted terms after every iteration, as the
    solve recorded them (:attr:`nstjax.TransferResult.term_history`: no extra evaluation)."""
    n_iter = int(result.n_iter)
    return {k: (list(range(1, n_iter + 1)), [float(v) for v in np.asarray(h)[:n_iter]])
            for k, h in result.term_history.items()}


def write(out: Path, result, frames: Frames, *, mask_kw: dict, protect, period: int,
          style_masks=None, content_mask=None, animation=None) -> dict:
    """Write the loss curve (always) and, to ``animation`` (``--animation``), the
    animation; returns the sidecar's entries for them (``style_masks`` and
    ``content_mask``: the mask files, as the record names them)."""
    n_iter = int(result.n_iter)
    record = {"frame_period": period,
              "masks": {"style": style_masks, "content": content_mask,
                        "mode": mask_kw.get("mask_mode")}}
    history = np.asarray(result.history)[:n_iter]
    series = {"total": (np.arange(1, n_iter + 1), history)}
    terms = term_series(result)
    series.update(terms)
    record["loss_terms"] = {k: {"iterations": v[0], "values": v[1]} for k, v in terms.items()}
    curve = loss_curve_path(out)
    try:
        save_image(curve, pictures.loss_curve(series, title=f"{out.name}: loss per "
                                              "iteration (log scale)"), protect=protect)
        record["loss_curve"] = str(curve)
    except ValueError as e:               # nothing positive and finite to plot
        record["loss_curve"] = None
        record["loss_curve_error"] = str(e)
        print(f"warning: no loss curve written: {e}", file=sys.stderr)
    if animation:
        shots = animation_frames(frames, result.image, n_iter)
        pictures.save_animation(animation, shots)
        record["animation"] = {"path": str(animation), "frames": len(shots)}
    return record
