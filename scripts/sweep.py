#!/usr/bin/env python
"""Parameter sweeps from the command line: K style transfers as one compiled program.

Every sweep flag takes a list; a flag given one value fixes that setting, a flag given two
or more sweeps it (``--mode grid``: every combination; ``--mode zip``: the i-th values
together)::

    python scripts/sweep.py --demo --output-dir out/sweep --size 128 --iters 100 \\
        --style-weight 1,10,100 --tv-weight 0,1

writes ``member_00.png`` ..., a labelled ``contact_sheet.png`` (rows and columns are the
swept values) and ``sweep.json`` (each member's setting, final losses, iterations, status
and time).  Bad input ends in one line on stderr and exit code 2; a non-finite loss in any
member in exit code 3.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from nstjax.cli import (EXIT_BAD_INPUT, EXIT_NON_FINITE, UsageError,  # noqa: E402
                        _check_memory, _check_number, ensure_writable_dir, run_command)

SHEET = "contact_sheet.png"
REPORT = "sweep.json"
# Order of the swept names: the last one varies fastest (the sheet's columns, β as in
# seed 003 Fig. 2), the one before it gives the rows.
ORDER = ("content", "style_layers", "mix", "hyper", "tv", "style")


def _numbers(text: str, sep: str = ",") -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(sep) if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"no numbers in {text!r}")
    return values


def _vectors(sep_outer: str, sep_inner: str):
    def parse(text: str) -> list[tuple[float, ...]]:
        return [_numbers(v, sep_inner) for v in text.split(sep_outer) if v.strip()]
    return parse


def _hyper(text: str) -> tuple[str, tuple[float, ...]]:
    name, eq, values = text.partition("=")
    if not eq or "." not in name:
        raise argparse.ArgumentTypeError(f"expected METHOD.PARAM=V1,V2,..., got {text!r}")
    return name.strip(), _numbers(values)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would add the usage)
        self.exit(EXIT_BAD_INPUT, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="sweep.py", description="Sweep style-transfer settings as one vmapped program.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    io = p.add_argument_group("inputs and outputs")
    io.add_argument("--content", type=Path, help="content image")
    io.add_argument("--style", type=Path, nargs="+", help="one or more style images")
    io.add_argument("--demo", action="store_true", help="use generated demo images")
    io.add_argument("--output-dir", type=Path, required=True,
                    help=f"folder for member_NN.png, {SHEET} and {REPORT}")
    io.add_argument("--size", type=int, default=256, help="long edge of the output, pixels")
    io.add_argument("--style-size", type=int, help="long edge of the style images")
    io.add_argument("--weights", type=Path, help="vgg19.h5 (default: weights/vgg19.h5)")
    sw = p.add_argument_group("swept settings (one value fixes, several sweep)")
    sw.add_argument("--style-weight", type=_numbers, help="β (balance factor), e.g. 1,10,100")
    sw.add_argument("--content-weight", type=_numbers, help="α, e.g. 1")
    sw.add_argument("--tv-weight", type=_numbers, help="τ, e.g. 0,1")
    sw.add_argument("--mix", type=_vectors(",", ":"),
                    help="fusion weights of the --style-loss methods, e.g. 0.9:0.1,0.5:0.5")
    sw.add_argument("--style-layer-weights", type=_vectors(";", ","),
                    help='per-layer style weight vectors, e.g. "1,1,1,1,1;1,0,0,0,0"')
    sw.add_argument("--hyper", type=_hyper, action="append", default=[],
                    help="a style-method hyper-parameter, e.g. mmd-poly.c=0,1,4 (repeatable)")
    sw.add_argument("--mode", choices=("grid", "zip"), default="grid",
                    help="grid: every combination; zip: lists taken together")
    lo = p.add_argument_group("objective")
    lo.add_argument("--content-layers", default="relu4_2")
    lo.add_argument("--style-layers", default="relu1_1,relu2_1,relu3_1,relu4_1,relu5_1")
    lo.add_argument("--style-loss", default="gram",
                    help="style method(s), e.g. gram or bn:0.5,mmd-poly:0.5")
    lo.add_argument("--content-loss", choices=("sum", "mse"), default="sum")
    lo.add_argument("--pooling", choices=("max", "avg"), default="max")
    op = p.add_argument_group("optimisation")
    op.add_argument("--optimizer", default="lbfgsb", help="lbfgsb, lbfgs, optax-lbfgs or adam")
    op.add_argument("--iters", type=int, default=300)
    op.add_argument("--lr", type=float, default=0.02, help="Adam learning rate")
    op.add_argument("--tol", type=float, default=0.0,
                    help="stop a member when its loss changes by less than this fraction")
    op.add_argument("--init", choices=("content", "noise", "style"), default="content")
    op.add_argument("--seed", type=int, default=0)
    op.add_argument("--chunk", type=int,
                    help="members per compiled call (default: as many as fit in memory)")
    return p


# ------------------------------------------------------------------------- validation

def _sweep_values(args, n_style_layers: int, methods: tuple) -> tuple[dict, list]:
    """``{sweep name: list of values}`` from the flags, in :data:`ORDER`, and the swept names.

    A one-value flag fixes its setting (in zip mode it is repeated to the common length).
    """
    given = {"content": args.content_weight, "style_layers": args.style_layer_weights,
             "mix": args.mix, "tv": args.tv_weight, "style": args.style_weight}
    flags = {"content": "--content-weight", "style_layers": "--style-layer-weights",
             "mix": "--mix", "tv": "--tv-weight", "style": "--style-weight"}
    values = {}
    for name in ORDER:
        if name == "hyper":
            for hname, hvalues in args.hyper:
                method, _, param = hname.rpartition(".")
                from nstjax.style_losses import get_style_loss
                if method not in methods or param not in get_style_loss(method).hyper:
                    raise UsageError(f"--hyper {hname}: no such hyper-parameter of the "
                                     f"style loss {args.style_loss!r}")
                for v in hvalues:
                    _check_number(f"hyper {hname}", v)
                values[f"hyper.{hname}"] = list(hvalues)
            continue
        if given[name] is None:
            continue
        want = {"style_layers": n_style_layers, "mix": len(methods)}.get(name)
        for v in given[name]:
            for x in (v if isinstance(v, tuple) else (v,)):
                _check_number(flags[name][2:], x)
            if want is not None and len(v) != want:
                what = "style layers" if name == "style_layers" else "style-loss methods"
                raise UsageError(f"{flags[name]}: {len(v)} weights in {v}, but there are "
                                 f"{want} {what}")
        values[name] = list(given[name])
    swept = {n: v for n, v in values.items() if len(v) > 1}
    if not swept:
        raise UsageError("nothing to sweep: give at least one sweep flag two or more values, "
                         "e.g. --style-weight 1,10,100")
    if args.mode == "zip":
        lengths = {len(v) for v in swept.values()}
        if len(lengths) > 1:
            detail = ", ".join(f"{n} has {len(v)}" for n, v in swept.items())
            raise UsageError(f"--mode zip needs lists of equal length ({detail})")
        k = lengths.pop()
        values = {n: (v * k if len(v) == 1 else v) for n, v in values.items()}
    return values, list(swept)


def _validate(args):
    if args.demo and (args.content or args.style):
        raise UsageError("--demo generates its own inputs: drop --content/--style")
    if not args.demo and (args.content is None or args.style is None):
        raise UsageError("give --content and --style (or --demo)")
    _check_number("lr", args.lr, positive=True)
    _check_number("tol", args.tol)
    if args.size < 16:
        raise UsageError(f"--size {args.size} is below the 16-pixel minimum")
    if args.style_size is not None and args.style_size < 16:
        raise UsageError(f"--style-size {args.style_size} is below the 16-pixel minimum")
    if args.iters < 1:
        raise UsageError("--iters must be >= 1")
    if args.chunk is not None and args.chunk < 1:
        raise UsageError("--chunk must be >= 1")
    if args.output_dir.exists() and not args.output_dir.is_dir():
        raise UsageError(f"{args.output_dir}: exists and is not a folder")


def _outputs(out_dir: Path, k: int, demo: bool) -> list[Path]:
    width = max(2, len(str(k - 1)))
    names = [f"member_{i:0{width}d}.png" for i in range(k)] + [SHEET, REPORT]
    if demo:
        names += ["demo_content.png", "demo_style.png"]
    return [out_dir / n for n in names]


def _check_not_inputs(outputs, inputs):
    for out in outputs:
        for p in inputs:
            if p is not None and p.exists() and out.exists() and out.samefile(p):
                raise UsageError(f"{out}: refusing to overwrite an input image")


# ---------------------------------------------------------------------- contact sheet

def format_value(value) -> str:
    """``10`` -> ``10``, ``1000.0`` -> ``1000``, ``(0.9, 0.1)`` -> ``0.9:0.1``."""
    if isinstance(value, (tuple, list, np.ndarray)):
        return ":".join(f"{float(v):g}" for v in value)
    return f"{float(value):g}"


def label(name: str, value) -> str:
    """``style=10``, ``layers=1:0:0``, ``mmd-poly.c=1`` (ASCII: the default font has no β)."""
    short = {"style_layers": "layers"}.get(name, name.removeprefix("hyper."))
    return f"{short}={format_value(value)}"


def contact_sheet(images, settings: list[dict], swept: list[str], *,
                  grid_shape: tuple[int, int] | None = None) -> np.ndarray:
    """A labelled sheet of the K results, ``f32[H', W', 3]`` in [0, 1] (for ``save_image``).

    Args:
      images: ``[K, H, W, 3]`` in [0, 1].
      settings: the K member settings; swept: the names to label.
      grid_shape: ``(rows, cols)`` of a grid over one or two names (the members in
        row-major order): rows are the values of the first name, columns those of the last
        (seed 003 Fig. 2 and Fig. 4), labelled at the margins.  Without it the members fill
        a near-square grid and each cell carries its own label.
    """
    from PIL import Image, ImageDraw, ImageFont

    from nstjax.image import to_uint8

    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(text):
        x0, y0, x1, y1 = measure.textbbox((0, 0), text, font=font)
        return x1 - x0, y1 - y0

    k, (h, w) = len(images), images[0].shape[:2]
    pad = 4
    line_h = max(text_size("Ag=1")[1], 8) + 2
    if grid_shape is not None:
        rows, cols = grid_shape
        row_labels = [label(swept[0], settings[r * cols][swept[0]]) for r in range(rows)] \
            if len(swept) == 2 else []
        col_labels = [label(swept[-1], settings[c][swept[-1]]) for c in range(cols)]
        cell_labels = None
    else:
        cols = math.ceil(math.sqrt(k))
        rows = math.ceil(k / cols)
        row_labels, col_labels = [], []
        cell_labels = [[label(n, s[n]) for n in swept] for s in settings]
    left = max([text_size(t)[0] for t in row_labels], default=0) + (2 * pad if row_labels else 0)
    top = line_h + pad if col_labels else 0
    caption = len(swept) * line_h if cell_labels else 0
    texts = col_labels + [t for cell in cell_labels or () for t in cell]
    cell_w = max([w] + [text_size(t)[0] for t in texts]) + pad
    cell_h = h + caption + pad
    sheet = Image.new("RGB", (left + cols * cell_w + pad, top + rows * cell_h + pad),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i in range(k):
        r, c = divmod(i, cols)
        x, y = left + pad + c * cell_w, top + pad + r * cell_h
        sheet.paste(Image.fromarray(to_uint8(images[i])), (x, y))
        for j, text in enumerate(cell_labels[i] if cell_labels else ()):
            draw.text((x, y + h + j * line_h), text, fill=(0, 0, 0), font=font)
    for c, text in enumerate(col_labels):
        tw, _ = text_size(text)
        draw.text((left + pad + c * cell_w + max(0, (w - tw) // 2), pad // 2), text,
                  fill=(0, 0, 0), font=font)
    for r, text in enumerate(row_labels):
        draw.text((pad, top + pad + r * cell_h + (h - line_h) // 2), text, fill=(0, 0, 0),
                  font=font)
    return np.asarray(sheet, np.float32) / 255.0


# ------------------------------------------------------------------------------- run

def run(argv=None) -> int:
    """Entry point; returns the exit code."""
    return run_command(build_parser(), _run, argv)


def _jsonable(value):
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _run(args) -> int:
    _validate(args)
    from nstjax import style_losses
    from nstjax.vgg import canonical_layers
    try:
        n_style_layers = len(canonical_layers(args.style_layers))
        methods = style_losses.parse_style_spec(args.style_loss)[0]
    except ValueError as e:
        raise UsageError(str(e)) from None
    values, swept = _sweep_values(args, n_style_layers, methods)

    import jax

    import nstjax
    from nstjax import demo
    from nstjax import sweeps as sw
    from nstjax.image import ImageError, load_image, save_image, write_text_atomic
    from nstjax.transfer import StyleConfig
    from nstjax.weights import WeightsError

    t_start = time.perf_counter()
    inputs = [args.content, *(args.style or [])]
    try:
        members = sw.member_settings(values, mode=args.mode)
        config = StyleConfig(
            content_layers=args.content_layers, style_layers=args.style_layers,
            style_loss=args.style_loss, content_loss=args.content_loss, pooling=args.pooling,
            optimizer=args.optimizer, max_iter=args.iters, rtol=args.tol, lr=args.lr,
            init=args.init)
        n_styles = 1 if args.demo else len(args.style)
        sw.stack_loss_weights(config.loss_weights(n_styles), members)  # names and shapes
    except ValueError as e:
        raise UsageError(str(e)) from None
    outputs = _outputs(args.output_dir, len(members), args.demo)
    _check_not_inputs(outputs, inputs)
    _check_memory(args)
    try:
        if args.demo:
            content = demo.demo_content(3 * args.size // 4, args.size)
            styles = [demo.demo_style(args.style_size or args.size, args.style_size or args.size)]
        else:
            content = load_image(args.content, size=args.size)
            styles = [load_image(s, size=args.style_size or args.size) for s in args.style]
        vgg = nstjax.load_vgg19(args.weights, log=lambda m: print(m, file=sys.stderr))
    except (ImageError, WeightsError) as e:
        raise UsageError(str(e)) from None
    ensure_writable_dir(args.output_dir)  # inputs are good: now the folder, before the work
    t_loaded = time.perf_counter()

    print(f"sweep: {len(members)} members ({args.mode} over {', '.join(swept)}) at "
          f"{content.shape[1]}×{content.shape[0]}", file=sys.stderr)
    plan = []

    def log(message):
        plan.append(message)
        print(message, file=sys.stderr)

    res = sw.sweep(vgg, content, styles, values, config=config, mode=args.mode,
                   key=jax.random.PRNGKey(args.seed), chunk=args.chunk, log=log)
    t_done = time.perf_counter()
    seconds = t_done - t_loaded

    try:
        for i in range(len(members)):
            save_image(outputs[i], res.images[i], protect=inputs)
        grid_shape = None
        if args.mode == "grid" and len(swept) <= 2:
            grid_shape = (len(values[swept[0]]) if len(swept) == 2 else 1,
                          len(values[swept[-1]]))
        sheet = contact_sheet(res.images, members, swept, grid_shape=grid_shape)
        save_image(outputs[len(members)], sheet, protect=inputs)
        if args.demo:
            save_image(outputs[-2], content)
            save_image(outputs[-1], styles[0])
    except ImageError as e:
        raise UsageError(str(e)) from None
    statuses = [nstjax.Status(int(s)) for s in res.status]
    report = {
        "content": "demo" if args.demo else str(args.content),
        "style": ["demo"] if args.demo else [str(s) for s in args.style],
        "mode": args.mode,
        "swept": swept,
        "image_size": [int(content.shape[1]), int(content.shape[0])],
        "settings": {k: _jsonable(v) for k, v in vars(args).items()
                     if k not in ("content", "style")},
        "config": {k: _jsonable(v) for k, v in config.__dict__.items()},
        "weights": str(args.weights or nstjax.weights.default_weights_path()),
        "devices": [str(d) for d in jax.local_devices()],
        "plan": plan,
        "contact_sheet": str(outputs[len(members)]),
        "members": [{
            "index": i,
            "image": str(outputs[i]),
            "setting": {n: _jsonable(v) for n, v in m.items()},
            "label": ", ".join(label(n, m[n]) for n in swept),
            "final_loss": float(res.loss[i]),
            "final_terms": {t: float(v[i]) for t, v in res.terms.items()},
            "iterations": int(res.n_iter[i]),
            "status": statuses[i].name.lower(),
            "time_s": round(seconds / len(members), 4),
            "loss_history": [float(v) for v in res.history[i, :int(res.n_iter[i])]],
        } for i, m in enumerate(members)],
        "time_s_note": "members run together in one program; a member's time_s is its "
                       "share of the sweep's wall time (compile included)",
        "timings_s": {"load": round(t_loaded - t_start, 3),
                      "sweep_including_compile": round(seconds, 3),
                      "total": round(time.perf_counter() - t_start, 3)},
    }
    write_text_atomic(outputs[len(members) + 1], json.dumps(report, indent=2))
    print(f"wrote {len(members)} images, {outputs[len(members)]} and "
          f"{outputs[len(members) + 1]} ({seconds:.1f} s)", file=sys.stderr)
    bad = [i for i, s in enumerate(statuses) if s == nstjax.Status.NON_FINITE]
    if bad:
        print(f"warning: the loss became non-finite in member(s) {bad}; they kept their last "
              "finite image", file=sys.stderr)
        return EXIT_NON_FINITE
    return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
