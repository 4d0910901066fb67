"""What the commands share: argument groups, input loading, checks, sidecars.

A command is a thin layer: flags are turned into the library's :class:`~nstjax.Objective`,
:func:`~nstjax.loss_weights` and :class:`~nstjax.Solver` (whose constructors validate and
hold the defaults), and every ``ValueError`` becomes one line on stderr and exit code 2.
List flags accept both ``a,b,c`` and ``a b c``.

The memory check is :mod:`nstjax.cli.memory_check`; Ctrl-C handling is
:mod:`nstjax.cli.interruption`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from pathlib import Path
from typing import Callable

import jax

import nstjax
from nstjax.cli.counts import count
from nstjax.cli.objective_args import add_objective_args, build_objective  # noqa: F401
from nstjax.io import jsonio
from nstjax.io.image import DEFAULT_SIZE, MIN_SIZE, ImageError, image_size
from nstjax.io.image_writing import check_writable, write_text_atomic
from nstjax.io.weights import WeightsError
from nstjax.objective.config import Objective
from nstjax.run.presets import PRESETS, get_preset, preset_names
from nstjax.run.resolve import solver_of, with_preset
from nstjax.run.sidecar import Sidecar, SidecarError
from nstjax.run.spec import SOLVER_FIELDS, RunSpec
from nstjax.run.transfer import MAX_SEED
from nstjax.solve.optimize import optimizer_names
from nstjax.solve.solver import Solver

EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3


def prng_key(seed: int | None):
    """The run's PRNG key from ``--seed`` (0 by default; :func:`parse_args` checked it)."""
    return jax.random.PRNGKey(seed or 0)


class UsageError(Exception):
    """A bad command line or input file: reported in one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """``argparse`` whose errors are one line (no usage block), exit code 2."""
    def error(self, message):
        raise UsageError(message)


# ----------------------------------------------------------------------- list values


def words(values) -> list[str]:
    """Flag values as a flat list: ``["a,b", "c"]`` and ``"a b,c"`` both give a, b, c."""
    if values is None:
        return []
    if isinstance(values, (str, int, float)):
        values = [values]
    out = []
    for v in values:
        out += [w for w in str(v).replace(",", " ").split() if w]
    return out


def numbers(values, flag: str) -> tuple[float, ...] | None:
    """Flag values as floats (``None`` stays ``None``); a non-number is a one-line error."""
    if values is None:
        return None
    try:
        out = tuple(float(w) for w in words(values))
    except ValueError:
        raise UsageError(f"{flag}: not a list of numbers: {' '.join(map(str, values))!r}") \
            from None
    if not out:
        raise UsageError(f"{flag}: no numbers given")
    return out


# --------------------------------------------------------------------- argument groups


def _library_defaults():
    return Objective(), Solver()


def add_input_args(p: argparse.ArgumentParser) -> None:
    o = p.add_argument_group("inputs")
    o.add_argument("--content", help="content image")
    o.add_argument("--style", nargs="+", help="one or more style images")
    o.add_argument("--demo", action="store_true",
                   help="use generated demo content and style images (no files needed)")
    o.add_argument("--size", type=int, help=f"long edge of the output in pixels "
                   f"(default {DEFAULT_SIZE})")
    o.add_argument("--style-size", type=int, help="long edge of the style images "
                   "(default: --size)")
    o.add_argument("--style-scale", type=float, help="long edge of the style images as a "
                   "fraction of the output's, e.g. 0.5 (as jcjohnson/neural-style's "
                   "-style_scale; not with --style-size)")
    o.add_argument("--weights", help="VGG19 weights, vgg19.h5 (default: $NSTJAX_WEIGHTS or "
                   "weights/vgg19.h5, fetched and converted on first use)")
    o.add_argument("--config", help="a run's JSON sidecar: repeat that run (flags given "
                   "beside it override)")
    o.add_argument("--preset", choices=preset_names(), help="a classic tool's recipe by name "
                   "(flags given beside it override): " + "; ".join(
                       f"{p.name}: {p.summary}" for p in PRESETS.values()))


def add_progress_args(g) -> None:
    """``--no-progress`` and ``--log-every`` on the argument group ``g``."""
    g.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    g.add_argument("--log-every", type=count, metavar="N",
                   help="one plain line every N iterations instead of a progress bar "
                   "(default: a bar on a terminal, lines every 10 iterations in a log)")


def add_solver_args(p: argparse.ArgumentParser, *,
                    init_help: str = "content, noise (the content's mean colour with "
                    "faint Gaussian noise), uniform (uniform noise in [0, 1]), style, grey "
                    "(ImageNet's mean pixel with a little noise), or an image file (default "
                    "content)") -> None:
    _, solver = _library_defaults()
    g = p.add_argument_group("solver")
    g.add_argument("--optimizer", help=f"{', '.join(optimizer_names())} (default {solver.optimizer})")
    g.add_argument("--iters", type=count, help=f"iterations (default {solver.max_iter})")
    g.add_argument("--history", type=count,
                   help=f"L-BFGS history size (default {solver.history_size})")
    g.add_argument("--lr", type=float, help=f"step size of adam and gd (default {solver.lr})")
    g.add_argument("--tol", type=float, help="stop when the loss changes by less than this "
                   "fraction (0.005 = 0.5%%; default off)")
    g.add_argument("--tol-x", type=float, help="stop when the image changes by less than "
                   "this fraction (default off)")
    g.add_argument("--threshold", type=float, help="stop when the loss falls below this "
                   "(default off)")
    g.add_argument("--average", type=float, metavar="DECAY",
                   help="output an exponential moving average of the iterates with this "
                   "decay (e.g. 0.99 with adam; default 0: the last iterate)")
    g.add_argument("--init", help=init_help)
    g.add_argument("--seed", type=int, help=f"PRNG seed, 0 to {MAX_SEED} (default 0)")


# ------------------------------------------------------------------------ --config


def apply_preset(parser: argparse.ArgumentParser, args, argv) -> argparse.Namespace:
    """``--preset NAME``: its settings become the parser's defaults (the flags this command
    has; a note names any it has not), a flag the preset refuses is one line."""
    preset = get_preset(args.preset)
    known = {a.dest: a for a in parser._actions}
    try:                                     # a refused flag: one line (nstjax.run.resolve)
        with_preset(RunSpec.from_arguments(
            {"preset": preset.name, **{k: getattr(args, k, None) for k in preset.refuses}}))
    except ValueError as e:
        raise UsageError(str(e)) from None
    unused = [k for k in preset.settings if k not in known]
    if unused:
        print(f"note: --preset {preset.name}: {parser.prog} has no "
              f"{', '.join('--' + k.replace('_', '-') for k in unused)}; the rest applies",
              file=sys.stderr)
    def as_flag(action, v):
        many = action.nargs in ("+", "*")
        if many:
            return [str(x) for x in v] if isinstance(v, tuple) else [str(v)]
        return " ".join(map(str, v)) if isinstance(v, tuple) else v

    values = {k: as_flag(known[k], v) for k, v in preset.settings.items() if k in known}
    parser.set_defaults(**values)
    return parser.parse_args(argv)


def parse_args(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """Parse ``argv``; ``--preset NAME``'s settings, then ``--config run.json``'s arguments,
    are the defaults (flags given beside them override)."""
    args = parser.parse_args(argv)
    if getattr(args, "preset", None):
        args = apply_preset(parser, args, argv)
    if getattr(args, "config", None):
        try:
            saved = Sidecar.read(args.config, command=parser.prog.split()[-1]).arguments
        except SidecarError as e:
            raise UsageError(str(e)) from None
        known = {a.dest for a in parser._actions}
        keep = {k: v for k, v in saved.items()
                if k in known and k not in ("config", "output", "output_dir", "web")}
        if keep.get("preset") and not getattr(args, "preset", None):
            # a sidecar that names a preset but not every setting it made (the web page's):
            # the preset's settings first, then what the sidecar says beyond them
            args.preset = keep["preset"]
            apply_preset(parser, args, argv)
            keep = {k: v for k, v in keep.items() if v is not None}
        parser.set_defaults(**keep)
        args = parser.parse_args(argv)
    every = getattr(args, "log_every", None)
    if every is not None and every < 1:
        raise UsageError(f"--log-every must be at least 1, not {every}")
    seed = getattr(args, "seed", None)
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise UsageError(f"--seed must be a whole number from 0 to {MAX_SEED}, not {seed}")
    return args


def arguments_record(args: argparse.Namespace) -> dict:
    """The parsed arguments as JSON values (the sidecar's ``arguments``, read by --config)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
            if k != "command"}


# ------------------------------------------------------------------ library objects


def build_solver(args):
    """The :class:`Solver` of the flags (checked by :mod:`nstjax.run.spec`)."""
    return solver_of(RunSpec.from_arguments({k: getattr(args, k, None) for k in SOLVER_FIELDS}))


def size_of(args) -> int:
    size = DEFAULT_SIZE if args.size is None else args.size
    if size < MIN_SIZE:
        raise UsageError(f"--size {size} is below the {MIN_SIZE}-pixel minimum")
    if args.style_size is not None and args.style_size < MIN_SIZE:
        raise UsageError(f"--style-size {args.style_size} is below the {MIN_SIZE}-pixel "
                         "minimum")
    style_size_of(args, size)
    return size


def style_size_of(args, size: int) -> int:
    """Long edge of the style images: ``--style-size``, ``⌈--style-scale × size⌉``
    (jcjohnson/neural-style's rounding), or ``size``."""
    scale = getattr(args, "style_scale", None)
    if scale is None:
        return args.style_size or size
    if args.style_size is not None:
        raise UsageError("--style-size and --style-scale both set the style's size: give one")
    if not 0 < scale < float("inf"):
        raise UsageError(f"--style-scale must be a positive number, not {scale}")
    edge = math.ceil(scale * size)
    if edge < MIN_SIZE:
        raise UsageError(f"--style-scale {scale} makes the style {edge} pixels, below the "
                         f"{MIN_SIZE}-pixel minimum")
    return edge


# --------------------------------------------------------------------------- inputs


def check_inputs_given(args) -> None:
    if args.demo and (args.content or args.style):
        raise UsageError("--demo generates its own inputs: drop --content/--style")
    if not args.demo and (args.content is None or not args.style):
        raise UsageError("give --content and --style (or --demo)")


def refuse_overwriting_inputs(outputs, inputs) -> None:
    for out in outputs:
        for p in inputs:
            if p.exists() and out.exists() and out.samefile(p):
                raise UsageError(f"{out}: refusing to overwrite an input image")


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


def check_output(path, inputs, *, bit_depth: int = 8) -> None:
    """Write-test the real output folder (and refuse an input or a folder), before any work."""
    try:
        check_writable(path, protect=inputs, bit_depth=bit_depth)
    except ImageError as e:
        raise UsageError(str(e)) from None


def header_size(path) -> tuple[int, int]:
    """``(width, height)`` of an image file, upright, from its header (nothing decoded)."""
    try:
        return image_size(path)
    except ImageError as e:
        raise UsageError(str(e)) from None


def load_vgg(weights: str | None):
    """The network from ``--weights`` (``None``: the default file); one line for a bad one."""
    try:
        return nstjax.load_vgg19(weights, log=lambda m: print(m, file=sys.stderr))
    except WeightsError as e:
        raise UsageError(str(e)) from None


# --------------------------------------------------------------------------- outputs


def write_json(path: Path, record: dict) -> None:
    """Strict JSON (no NaN/Infinity tokens), written atomically."""
    write_text_atomic(path, jsonio.dumps(record, indent=2))


def config_record(objective, solver) -> dict:
    return {"objective": dataclasses.asdict(objective), "solver": dataclasses.asdict(solver)}


def run_command(body: Callable, args) -> int:
    """``body(args)``; a bad input or an unwritable output becomes one line and exit code 2."""
    try:
        return body(args)
    except (UsageError, ImageError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:  # e.g. the disk filled up while writing an output
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def enable_compilation_cache() -> None:
    """JAX's persistent compilation cache, on unless $NSTJAX_COMPILATION_CACHE says off."""
    try:
        from nstjax.run.compile_cache import enable_compilation_cache as enable
    except ImportError:
        return
    enable()
