"""``nstjax sweep``: K style transfers as one compiled, vmapped program.

Every sweep flag takes a list; a flag given one value fixes that setting, a flag given two
or more sweeps it (``--mode grid``: every combination; ``--mode zip``: the i-th values
together)::
    nstjax sweep --demo --output-dir out/sweep --size 128 --iters 100 \\
        --style-weight 1,10,100 --tv-weight 0,10

writes ``member_00.png`` ..., a labelled ``contact_sheet.png`` (rows and columns are the
swept values) and ``sweep.json`` (each member's setting, final losses, iterations, status
and time).  Bad input ends in one line on stderr and exit code 2; a non-finite loss in any
member in exit code 3; Ctrl-C stops every member after its current iteration and saves them
(exit 130).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import jax
import numpy as np

import nstjax
from nstjax.cli import common, counts, memory_check
from nstjax.cli.common import UsageError
from nstjax.cli.inputs import Inputs
from nstjax.cli.session import session_of
from nstjax.io.image_writing import output_unit, save_image
from nstjax.io.pictures import contact_sheet, label, with_loss_curve
from nstjax.objective.config import loss_weights
from nstjax.run import memory
from nstjax.run import sweeps as sw
from nstjax.run.presets import get_preset
from nstjax.run.start import SWEEP_INITS

SHEET = "contact_sheet.png"
REPORT = "sweep.json"
# Order of the swept names: the last one varies fastest (the sheet's columns, β as in
# li2017 Fig. 2), the one before it gives the rows.
ORDER = ("content_weight", "style_layer_weights", "style_mix", "hyper", "tv_weight",
         "style_weight")
FLAGS = {"content_weight": "--content-weight", "style_layer_weights": "--style-layer-weights",
         "style_mix": "--mix", "tv_weight": "--tv-weight", "style_weight": "--style-weight"}


def _vectors(values, flag: str, outer: str, inner: str) -> list[tuple[float, ...]] | None:
    """``"1,1;1,0"`` or ``["1,1", "1,0"]`` (with ``outer=";"``, ``inner=","``) -> vectors."""
    if values is None:
        return None
    items = [v for value in values for v in str(value).replace(outer, " ").split() if v]
    return [common.numbers(item.replace(inner, " "), flag) for item in items]


def _hyper(values) -> list[tuple[str, tuple[float, ...]]]:
    out = []
    for text in values or ():
        name, eq, rest = str(text).partition("=")
        if not eq or "." not in name:
            raise UsageError(f"--hyper: expected METHOD.PARAM=V1,V2,..., got {text!r}")
        out.append((name.strip(), common.numbers(rest, f"--hyper {name}")))
    return out


def add_arguments(p) -> None:
    common.add_input_args(p)
    out = p.add_argument_group("outputs")
    out.add_argument("--output-dir", help=f"folder for member_NN.png, {SHEET} and {REPORT}")
    common.add_progress_args(out)
    sw = p.add_argument_group("swept settings (one value fixes, several sweep)")
    sw.add_argument("--style-weight", nargs="+", help="β (balance factor), e.g. 1,10,100")
    sw.add_argument("--content-weight", nargs="+", help="α, e.g. 1")
    sw.add_argument("--tv-weight", nargs="+", help="τ, e.g. 0,10,30 (default 10)")
    sw.add_argument("--mix", nargs="+",
                    help="fusion weights of the --style-loss methods, e.g. 0.9:0.1,0.5:0.5")
    sw.add_argument("--style-layer-weights", nargs="+",
                    help='per-layer style weight vectors, e.g. "1,1,1,1,1;1,0,0,0,0"')
    sw.add_argument("--hyper", action="extend", nargs="+", default=None,
                    help="a style-method hyper-parameter, e.g. mmd-poly.c=0,1,4 (repeatable)")
    sw.add_argument("--style-scales", nargs="+", help="λ, one per style method (fixed for "
                    "every member; default the registry's)")
    sw.add_argument("--mode", choices=("grid", "zip"), default="grid",
                    help="grid: every combination; zip: lists taken together")
    sw.add_argument("--chunk", type=counts.count,
                    help="members per compiled call (default, and at most: as many as fit "
                    "in memory)")
    memory_check.add_memory_args(sw)
    common.add_objective_args(p)
    common.add_solver_args(p)


# ------------------------------------------------------------------------- validation

def _sweep_values(args, objective) -> tuple[dict, list]:
    """``{sweep name: list of values}`` from the flags, in :data:`ORDER`, and the swept names.
    A one-value flag fixes its setting (in zip mode it is repeated to the common length).
    Each value is checked by the library when the members are made.
    """
    given = {"content_weight": common.numbers(args.content_weight, "--content-weight"),
             "style_weight": common.numbers(args.style_weight, "--style-weight"),
             "tv_weight": common.numbers(args.tv_weight, "--tv-weight"),
             "style_layer_weights": _vectors(args.style_layer_weights,
                                             "--style-layer-weights", ";", ","),
             "style_mix": _vectors(args.mix, "--mix", ",", ":")}
    values = {}
    for name in ORDER:
        if name == "hyper":
            for hname, hvalues in _hyper(args.hyper):
                if hname not in objective.hyper_names():
                    raise UsageError(f"--hyper {hname}: no such hyper-parameter of the "
                                     f"style loss {','.join(objective.style_losses)!r}")
                values[f"hyper.{hname}"] = list(hvalues)
            continue
        if given[name] is not None:
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


def _outputs(out_dir: Path, k: int, demo: bool) -> list[Path]:
    width = max(2, len(str(k - 1)))
    names = [f"member_{i:0{width}d}.png" for i in range(k)] + [SHEET, REPORT]
    if demo:
        names += ["demo_content.png", "demo_style.png"]
    return [out_dir / n for n in names]


def member_cell(res, i: int) -> np.ndarray:
    """Member ``i``'s image above its loss curve: the total per iteration (the solver's
    history) and the final weighted content and style terms (log scale)."""
    n = int(res.n_iter[i])
    series = {"total": (np.arange(1, n + 1), res.history[i, :n])}
    series.update({k: ([n], [float(res.terms[k][i])]) for k in ("content", "style")
                   if k in res.terms})
    return with_loss_curve(res.images[i], series)


def member_cells(res) -> np.ndarray:
    """Every member's :func:`member_cell`, stacked."""
    return np.stack([member_cell(res, i) for i in range(len(res.images))])


def _check(args):
    """The flags' own checks, before any work; the output folder."""
    common.check_inputs_given(args)
    if args.output_dir is None:
        raise UsageError("give --output-dir (the folder for the members and the sheet)")
    out_dir = Path(args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder")
    if args.chunk is not None and args.chunk < 1:
        raise UsageError("--chunk must be >= 1")
    return out_dir


def run(args) -> int:
    """The body of ``nstjax sweep``; returns the exit code."""
    if args.preset and get_preset(args.preset).method != "objective":
        raise UsageError("--preset nnst runs with nstjax stylize only: its targets are "
                         "searched anew at each scale of one run, not a swept weight")
    out_dir = _check(args)
    inputs = Inputs.of(args)
    size = inputs.size
    objective, mix = common.build_objective(args)
    solver = common.build_solver(args)
    values, swept = _sweep_values(args, objective)



    n_styles = 1 if args.demo else len(args.style)
    base = loss_weights(objective, n_styles=n_styles, style_mix=mix,
                        style_scales=common.numbers(args.style_scales, "--style-scales"))  # members vary it
    members = sw.member_settings(values, mode=args.mode)
    sw.stack_loss_weights(base, members)              # every member's values checked now
    outputs = _outputs(out_dir, len(members), args.demo)
    common.refuse_overwriting_inputs(outputs, inputs.paths)
    common.enable_compilation_cache()      # first: the memory check's compile is kept
    objective = memory_check.check_memory(args, objective, size).objective  # may pick --remat

    session = session_of(args, "sweep", protect=inputs.paths)
    content, styles = inputs.load()
    init = args.init or "content"
    if init not in SWEEP_INITS:
        raise UsageError(f"--init for a sweep is {', '.join(SWEEP_INITS[:-1])} or "
                         f"{SWEEP_INITS[-1]}")
    common.ensure_writable_dir(out_dir)  # inputs are good: now the folder, before the work
    vgg = common.load_vgg(inputs.weights)
    session.loaded()
    print(f"sweep: {len(members)} members ({args.mode} over {', '.join(swept)}) at "
          f"{content.shape[1]}×{content.shape[0]}", file=sys.stderr)
    plan = []

    def log(message):            # the plan, above the progress bar
        plan.append(message)
        session.say(message, always=True)

    session.start(solver.max_iter, "sweep", "")
    res = session.solve(lambda: sw.sweep(
        vgg, content, styles, values, key=inputs.key(),
        objective=objective, weights=base, solver=solver, init=init, mode=args.mode,
        chunk=args.chunk, log=log, callbacks=session.callbacks(),
        available=memory_check.available_memory(args)))
    report = session.record(
        "sweep_including_compile", content="demo" if args.demo else str(args.content),
        style=["demo"] if args.demo else [str(s) for s in args.style], mode=args.mode,
        swept=swept, image_size=[int(content.shape[1]), int(content.shape[0])],
        **common.config_record(objective, solver), base_loss_weights=base._asdict(),
        devices=[str(d) for d in jax.local_devices()], plan=plan,
        contact_sheet=str(outputs[len(members)]),
        members=_member_records(res, outputs, swept, session.seconds),
        members_not_run=len(members) - len(res.images), memory=dict(res.memory),
        time_s_note="members run together in one program; a member's time_s is its "
                    "share of the sweep's wall time (compile included)")
    stale = _earlier_members(outputs[len(members) + 1]) - {Path(p).name for p in outputs}
    with output_unit():          # every member, the sheet and sweep.json: all or none
        _write_pictures(args, res, outputs, members, values, swept, content, styles,
                        inputs.paths)
        report["memory"]["peak_bytes"] = memory.measured_peak_bytes()  # the pictures too
        common.write_json(outputs[len(members) + 1], report)
    for name in stale:           # an earlier, larger sweep's members, now replaced
        with contextlib.suppress(OSError):
            (outputs[len(members) + 1].parent / name).unlink()
    return session.finish(f"{len(res.images)} member images ({outputs[0].parent}/member_*), "
                          f"{outputs[len(members)]} and {outputs[len(members) + 1]}",
                          res.status, what="some member(s)")


def _earlier_members(sweep_json: Path) -> set:
    """File names of the members an earlier sweep in this folder wrote (its sweep.json)."""
    try:
        earlier = json.loads(sweep_json.read_text(encoding="utf-8"))
        return {Path(m["image"]).name for m in earlier.get("members", [])
                if isinstance(m, dict) and isinstance(m.get("image"), str)
                and Path(m["image"]).name.startswith("member_")}
    except (OSError, ValueError, AttributeError):
        return set()


def _write_pictures(args, res, outputs, members, values, swept, content, styles,
                    inputs) -> None:
    """Every member's image, the labelled contact sheet and, for --demo, the inputs
    (``inputs``: the files read, never written over)."""
    done = len(res.images)
    for i in range(done):
        save_image(outputs[i], res.images[i], protect=inputs)
    grid_shape = None
    if args.mode == "grid" and len(swept) <= 2 and done == len(members):
        grid_shape = (len(values[swept[0]]) if len(swept) == 2 else 1, len(values[swept[-1]]))
    cells = _Cells(res)      # made one at a time as the sheet is drawn, never all at once
    sheet = contact_sheet(cells, res.settings, swept, grid_shape=grid_shape)
    save_image(outputs[len(members)], sheet, protect=inputs)
    if args.demo:
        save_image(outputs[-2], content)
        save_image(outputs[-1], styles[0])


class _Cells:
    """The members' cells as a sequence that draws each one when it is read."""

    def __init__(self, res):
        self.res = res

    def __len__(self):
        return len(self.res.images)

    def __getitem__(self, i):
        return member_cell(self.res, i)


def _member_records(res, outputs, swept, seconds) -> list[dict]:
    done = len(res.images)
    return [{
        "index": i,
        "image": str(outputs[i]),
        "setting": m,
        "label": ", ".join(label(n, m[n]) for n in swept),
        "final_loss": float(res.loss[i]),
        "final_terms": {t: float(v[i]) for t, v in res.terms.items()},
        "iterations": int(res.n_iter[i]),
        "status": nstjax.Status(int(res.status[i])).name.lower(),
        "time_s": round(seconds / done, 4),
        "loss_history": res.history[i, :int(res.n_iter[i])],
    } for i, m in enumerate(res.settings)]
