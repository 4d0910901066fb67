"""The ``stylize`` command: a thin shell over :func:`nstjax.stylize`.

Files, flags, the progress bar and the JSON sidecar live here; the numbers are computed
by the pure core.  Every bad input ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3


class UsageError(Exception):
    """A bad command line or input file: reported in one line, exit code 2."""


def _float_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stylize.py", description="Neural style transfer (Gatys et al.) with nstjax.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    io = p.add_argument_group("inputs and outputs")
    io.add_argument("--content", type=Path, help="content image")
    io.add_argument("--style", type=Path, nargs="+", help="one or more style images")
    io.add_argument("--demo", action="store_true",
                    help="use generated demo content and style images (no files needed)")
    io.add_argument("--style-blend", type=_float_list, help="weights of the style images")
    io.add_argument("--output", type=Path, required=True,
                    help="output image (format from the extension); a JSON sidecar "
                         "<output>.json records settings, timings and losses")
    io.add_argument("--size", type=int, default=384, help="long edge of the output, pixels")
    io.add_argument("--style-size", type=int, help="long edge of the style images "
                    "(default: --size)")
    io.add_argument("--save-every", type=int, default=0,
                    help="also write <output stem>_<iter><ext> every N iterations")
    io.add_argument("--weights", type=Path, help="vgg19.h5 (default: weights/vgg19.h5 or "
                    "$NSTJAX_WEIGHTS; fetched and converted on first use)")
    io.add_argument("--no-progress", action="store_true", help="no progress bar")
    lo = p.add_argument_group("objective")
    lo.add_argument("--content-layers", default="relu4_2")
    lo.add_argument("--style-layers", default="relu1_1,relu2_1,relu3_1,relu4_1,relu5_1")
    lo.add_argument("--style-layer-weights", type=_float_list)
    lo.add_argument("--style-loss", default="gram",
                    help="style method(s), e.g. gram or bn:0.5,mmd-poly:0.5")
    lo.add_argument("--content-weight", type=float, default=1.0)
    lo.add_argument("--style-weight", type=float, default=None,
                    help="balance factor β (default: the library's StyleConfig default)")
    lo.add_argument("--tv-weight", type=float, default=0.0)
    lo.add_argument("--content-loss", choices=("sum", "mse"), default="sum")
    lo.add_argument("--auto-scale", action="store_true",
                    help="set each style method's scale from gradient norms at the start")
    lo.add_argument("--pooling", choices=("max", "avg"), default="max")
    op = p.add_argument_group("optimisation")
    op.add_argument("--optimizer", default="lbfgsb",
                    help="lbfgsb, lbfgs, optax-lbfgs or adam")
    op.add_argument("--iters", type=int, default=300)
    op.add_argument("--lr", type=float, default=0.02, help="Adam learning rate")
    op.add_argument("--tol", type=float, default=0.0,
                    help="stop when the loss changes by less than this fraction (0.005 = 0.5%%)")
    op.add_argument("--threshold", type=float, default=-math.inf,
                    help="stop when the loss falls below this value")
    op.add_argument("--init", default="content",
                    help="content, noise, style, or an image file")
    op.add_argument("--seed", type=int, default=0)
    return p


def _check_number(name, value, *, positive=False):
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise UsageError(f"--{name} must be a finite number {'> 0' if positive else '>= 0'}, "
                         f"got {value}")


def _validate(args):
    if args.demo and (args.content or args.style):
        raise UsageError("--demo generates its own inputs: drop --content/--style")
    if not args.demo and (args.content is None or args.style is None):
        raise UsageError("give --content and --style (or --demo)")
    for name in ("content_weight", "style_weight", "tv_weight", "tol"):
        _check_number(name.replace("_", "-"), getattr(args, name))
    _check_number("lr", args.lr, positive=True)
    for name in ("style_blend", "style_layer_weights"):
        for v in getattr(args, name) or ():
            _check_number(name.replace("_", "-"), v)
    if args.size < 16:
        raise UsageError(f"--size {args.size} is below the 16-pixel minimum")
    if args.style_size is not None and args.style_size < 16:
        raise UsageError(f"--style-size {args.style_size} is below the 16-pixel minimum")
    if args.iters < 1:
        raise UsageError("--iters must be >= 1")
    if args.save_every < 0:
        raise UsageError("--save-every must be >= 0")
    if args.style and args.style_blend and len(args.style_blend) != len(args.style):
        raise UsageError(f"--style-blend has {len(args.style_blend)} weights for "
                         f"{len(args.style)} style images")
    if _image_format(args.output) is None:
        raise UsageError(f"{args.output}: unknown image extension {args.output.suffix!r}")
    inputs = [args.content, *(args.style or [])]
    if args.init not in ("content", "noise", "style"):
        inputs.append(Path(args.init))
    for p in inputs:
        if p is not None and p.exists() and args.output.exists() and args.output.samefile(p):
            raise UsageError(f"{args.output}: refusing to overwrite an input image")


def _scaled_size(path, size):
    """(h, w) of an image file once its long edge is ``size``, read from the header only."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            w, h = img.size
    except (OSError, UnidentifiedImageError, ValueError):
        return None  # load_image reports it properly
    scale = size / max(w, h)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _check_memory(args):
    """Refuse, before decoding or resizing anything, a size that cannot fit in memory."""
    from nstjax import memory
    from nstjax.vgg import canonical_layers

    try:
        layers = canonical_layers(args.content_layers) + canonical_layers(args.style_layers)
    except ValueError as e:
        raise UsageError(str(e)) from None
    shapes = []
    if args.demo:
        shapes.append((3 * args.size // 4, args.size))
    else:
        shapes += [s for s in [_scaled_size(args.content, args.size)] if s]
        shapes += [s for p in args.style for s in [_scaled_size(p, args.style_size or args.size)]
                   if s]
    have = memory.available_bytes()
    for h, w in shapes:
        need = memory.estimate_transfer_bytes(h, w, layers=layers)
        if need > 0.8 * have:
            raise UsageError(f"{w}×{h} needs about {need / 2**30:.1f} GiB, more than this "
                             f"machine's {have / 2**30:.1f} GiB allows; use a smaller --size")


def _image_format(path: Path):
    from PIL import Image
    return Image.registered_extensions().get(path.suffix.lower())


def run_command(parser: argparse.ArgumentParser, body, argv=None) -> int:
    """Parse ``argv`` and run ``body(args)``; a :class:`UsageError` or an unwritable output
    becomes one line on stderr and exit code 2 (shared by ``stylize.py`` and ``sweep.py``)."""
    args = parser.parse_args(argv)
    try:
        return body(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:  # e.g. the disk filled up while writing an output
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def ensure_writable_dir(folder: Path) -> None:
    """Create ``folder`` and check it can be written, before any long computation."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{folder}: cannot create the output folder ({e.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{folder}: the output folder is not writable")


def run(argv=None) -> int:
    """Entry point of ``stylize.py``; returns the exit code."""
    return run_command(build_parser(), _run, argv)


def _run(args) -> int:
    _validate(args)
    import jax
    import jax.numpy as jnp

    import nstjax
    from nstjax import demo, memory
    from nstjax.image import ImageError, load_image, save_image, write_text_atomic
    from nstjax.transfer import StyleConfig
    from nstjax.weights import WeightsError

    t_start = time.perf_counter()
    _check_memory(args)
    try:
        if args.demo:
            content = demo.demo_content(3 * args.size // 4, args.size)
            styles = [demo.demo_style(args.style_size or args.size, args.style_size or args.size)]
        else:
            content = load_image(args.content, size=args.size)
            styles = [load_image(s, size=args.style_size or args.size) for s in args.style]
        init_image = None
        if args.init not in ("content", "noise", "style"):
            init_image = load_image(args.init, shape=content.shape[:2])
        defaults = StyleConfig()
        config = StyleConfig(
            content_layers=args.content_layers, style_layers=args.style_layers,
            style_loss=args.style_loss, content_loss=args.content_loss,
            content_weight=args.content_weight,
            style_weight=defaults.style_weight if args.style_weight is None else args.style_weight,
            tv_weight=args.tv_weight, style_layer_weights=args.style_layer_weights,
            style_blend=args.style_blend, auto_scale=args.auto_scale, pooling=args.pooling,
            optimizer=args.optimizer, max_iter=args.iters, rtol=args.tol,
            threshold=args.threshold, lr=args.lr,
            init=args.init if init_image is None else "content")
    except (ImageError, ValueError) as e:
        raise UsageError(str(e)) from None

    h, w = content.shape[:2]
    ensure_writable_dir(args.output.parent)  # inputs are good: now the folder, before the work

    try:
        vgg = nstjax.load_vgg19(args.weights, log=lambda m: print(m, file=sys.stderr))
    except WeightsError as e:
        raise UsageError(str(e)) from None
    t_loaded = time.perf_counter()

    bar = None
    if not args.no_progress:
        from tqdm import tqdm
        bar = tqdm(total=args.iters, desc="stylize", unit="it", file=sys.stderr,
                   dynamic_ncols=True)

    def progress(i, value):
        if bar is not None:
            bar.n = i
            bar.set_postfix_str(f"loss {value:.4g}", refresh=True)

    out = args.output
    snapshots = []

    def snapshot(i, x):
        path = out.with_name(f"{out.stem}_{i:05d}{out.suffix}")
        save_image(path, np.asarray(x), protect=[args.content, *(args.style or [])])
        snapshots.append(str(path))

    result = nstjax.stylize(vgg, jnp.asarray(content), [jnp.asarray(s) for s in styles],
                            config=config, key=jax.random.PRNGKey(args.seed),
                            init_image=init_image, progress=progress,
                            snapshot=snapshot if args.save_every else None,
                            snapshot_every=args.save_every)
    if bar is not None:
        bar.close()
    t_done = time.perf_counter()

    n_iter = int(result.n_iter)
    status = nstjax.Status(int(result.status))
    try:
        save_image(out, np.asarray(result.image), protect=[args.content, *(args.style or [])])
        if args.demo:
            save_image(out.with_name(f"{out.stem}_demo_content.png"), content)
            save_image(out.with_name(f"{out.stem}_demo_style.png"), styles[0])
    except ImageError as e:
        raise UsageError(str(e)) from None
    history = [float(v) for v in np.asarray(result.history)[:n_iter]]
    sidecar = {
        "output": str(out),
        "content": "demo" if args.demo else str(args.content),
        "style": ["demo"] if args.demo else [str(s) for s in args.style],
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if k not in ("content", "style", "output")},
        "config": {k: (list(v) if isinstance(v, tuple) else v)
                   for k, v in config.__dict__.items()},
        "style_scales": [float(v) for v in np.asarray(result.loss_weights.scales)],
        "image_size": [int(w), int(h)],
        "weights": str(args.weights or nstjax.weights.default_weights_path()),
        "device": str(jax.devices()[0]),
        "iterations": n_iter,
        "status": status.name.lower(),
        "final_loss": float(result.loss),
        "final_terms": {k: float(v) for k, v in result.terms.items()},
        "loss_history": history,
        "timings_s": {"load": round(t_loaded - t_start, 3),
                      "optimise_including_compile": round(t_done - t_loaded, 3),
                      "total": round(time.perf_counter() - t_start, 3)},
        "snapshots": snapshots,
    }
    sidecar["config"]["threshold"] = str(config.threshold) if not math.isfinite(
        config.threshold) else config.threshold
    write_text_atomic(out.with_name(out.name + ".json"), json.dumps(sidecar, indent=2))
    msg = (f"wrote {out} ({w}×{h}, {n_iter} iterations, loss {float(result.loss):.4g}, "
           f"{t_done - t_loaded:.1f} s)")
    print(msg, file=sys.stderr)
    if status == nstjax.Status.NON_FINITE:
        print(f"warning: the loss became non-finite after iteration {n_iter}; stopped and "
              "kept the last finite image", file=sys.stderr)
        return EXIT_NON_FINITE
    return 0


def main() -> None:
    sys.exit(run())
