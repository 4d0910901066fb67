"""The commands' memory check: refuse, before decoding anything, a run whose compiled
program would not fit, in one line naming the largest ``--size`` (or ``--tile``) that does
and the flags that would make it fit.

The decision is :func:`nstjax.run.transfer_memory.plan_transfer` (``--preset nnst``:
:func:`nstjax.run.nnst_memory.check_nnst`), the one the web page and Python use; this
module reads the flags (``--max-memory``, ``--remat``, ``--tile``, ``--style-size``) and
words the refusal.  The check returns the run's memory plan, which
the commands write beside their outputs with the measured peak.
"""

from __future__ import annotations

import math
import sys
from typing import NamedTuple

from nstjax.cli.common import MIN_SIZE, UsageError, build_solver
from nstjax.cli.inputs import Inputs
from nstjax.objective.config import Objective
from nstjax.run import memory, nnst_memory
from nstjax.run.memory_plan import MemoryPlan
from nstjax.run.transfer_memory import (BUDGET_FRACTION, WEIGHT_BYTES, does_not_fit, gib,
                                        history_bytes, largest_edge, plan_transfer)


def add_memory_args(g) -> None:
    """``--max-memory`` on the argument group ``g``."""
    g.add_argument("--max-memory", type=float, metavar="GiB",
                   help="plan for at most this much memory (default: what the machine has "
                   "free): a sweep larger runs in chunks, a run larger is refused before "
                   "any work")


def memory_limit(args) -> int | None:
    """``--max-memory`` in bytes (None when not given); one line for a bad value."""
    limit = getattr(args, "max_memory", None)
    if limit is None:
        return None
    if not math.isfinite(limit) or limit <= 0:
        raise UsageError(f"--max-memory must be a positive number of GiB, not {limit:g}")
    return int(limit * 2 ** 30)


def available_memory(args) -> int:
    """Bytes a run may still add: what the machine has free, and under ``--max-memory``
    (the process's peak) what that leaves above what the process holds now."""
    free = memory.available_bytes()
    limit = memory_limit(args)
    return free if limit is None else max(0, min(free, limit - memory.resident_bytes()))


class TooBig(UsageError):
    """A run that would not fit in memory; ``largest`` is the largest ``--size`` that
    fits (0: none)."""
    def __init__(self, message: str, largest: int):
        super().__init__(message)
        self.largest = largest


def allows(args) -> str:
    """Who sets the budget, as a refusal names it: ``--max-memory`` or this machine."""
    return "--max-memory" if memory_limit(args) is not None else "this machine"


def check_nnst_memory(inputs: Inputs, available: int, allows: str = "this machine"):
    """Refuse, before decoding anything, an ``--preset nnst`` run of ``inputs`` that would
    not fit in ``available`` bytes (:func:`nstjax.run.nnst_memory.check_nnst`), naming the
    largest ``--size`` that fits; returns the run's
    :class:`nstjax.run.memory_plan.MemoryPlan`."""
    content, style = inputs.shapes()[:2]
    fit = nnst_memory.check_nnst(content, style, available=available)
    if fit.fits:
        return fit.plan
    largest = largest_edge(fit.need, fit.budget, inputs.size)
    fits = (f"the largest that fits is --size {largest}" if largest >= MIN_SIZE
            else "no size fits")
    raise TooBig(f"{nnst_memory.does_not_fit(fit, content, allows)}; {fits}", largest)


class Fitted(NamedTuple):
    """:func:`check_memory`'s answer for a run that fits: ``objective`` with its
    checkpointing policy chosen when ``--remat`` is auto, the run's
    :class:`nstjax.run.memory_plan.MemoryPlan`, and the styles' long edge (``--style-size``
    as given, or the largest that fits for a tiled run that named none)."""

    objective: Objective
    plan: MemoryPlan
    style_size: int


def check_memory(args, objective, size: int, *, members: int = 1,
                 available: int | None = None, tile: int | None = None,
                 style_size: int | None = None) -> Fitted:
    """Refuse, before decoding anything, a run whose compiled program would not fit.
    The decision is :func:`nstjax.run.transfer_memory.plan_transfer` (80% of
    :func:`nstjax.run.memory.available_bytes`); with ``--remat auto`` (the default) the
    checkpointing policy ``"block"`` is taken when ``"none"`` would not fit.
    A refusal names the largest ``--size`` that fits and the options that would make
    this one fit.  ``available``: the bytes to plan for (default: measured now);
    ``tile``: the window's edge of a tiled run (one window at a time is solved);
    ``style_size``: the styles' long edge (default: the flags').
    """
    inputs = Inputs.of(args, size)
    if style_size is not None:
        inputs = inputs._replace(style_size=style_size)
    (h, w), *style_shapes = inputs.shapes()
    if tile:                           # tiled: one tile at a time is solved
        h, w = min(h, tile), min(w, tile)
    available = available_memory(args) if available is None else available
    budget = BUDGET_FRACTION * available
    allowed_by = allows(args)
    style_refusal = _style_refusal(args, objective, style_shapes, budget, tile, allowed_by)
    if isinstance(style_refusal, int):                 # tiles: a smaller style fits
        return check_memory(args, objective, size, members=members, available=available,
                            tile=tile, style_size=style_refusal)
    solver = build_solver(args)
    history = _history_bytes(solver, members, budget, allowed_by)
    screen = memory.estimate_transfer_bytes(h, w, layers=objective.layers,
                                            members=members) + members * history
    if style_refusal is not None and screen <= 4 * budget:  # far beyond: the content first
        raise style_refusal
    auto = getattr(args, "remat", None) in (None, "auto")
    fit = plan_transfer(objective, solver, (h, w), style_shapes, available=available,
                        members=members, remat_auto=auto, history=history)
    if fit.fits:
        if fit.objective.remat != objective.remat:
            print(f"note: {w}×{h} does not fit without checkpointing; using --remat "
                  f"{fit.objective.remat} ({fit.need / 2**30:.1f} GiB)", file=sys.stderr)
        return Fitted(fit.objective, fit.plan, inputs.style_size)
    edge = min(size, tile) if tile else size
    raise _too_big(does_not_fit(fit, (h, w), allowed_by), fit.need, budget, edge, objective,
                   tile, auto)


def _history_bytes(solver, members: int, budget: float, allows: str) -> int:
    """Bytes of one member's loss histories on the device (f32 per iteration: the total
    and three terms); refuses an ``--iters`` whose histories alone would not fit."""
    history = history_bytes(solver.max_iter)
    if 3 * members * history > budget / 2:    # on the device, and twice on the host
        most = int(budget / 2 / (3 * members * 16)) // 1000 * 1000
        raise UsageError(f"--iters {solver.max_iter}: the loss histories alone would need "
                         f"{gib(3 * members * history)} of the {gib(budget)} {allows} "
                         f"allows; use --iters {most} or fewer")
    return history


def _too_big(what: str, need: float, budget: float, edge: int, objective, tile,
             tried_block: bool) -> TooBig:
    """The refusal: ``what``, the largest size (or tile) that fits and the options."""
    largest = largest_edge(need, budget, edge)
    options = ["--tile auto (any size, solved in overlapping tiles)"]
    if objective.precision != "bf16":
        options.append("--precision bf16 (about half the activations)")
    if not tried_block:
        options.append("--remat block")
    fits = (f"the largest that fits is --size {largest}" if largest >= MIN_SIZE
            else "no size fits")
    if tile:
        options = options[1:]
        fits = (f"the largest tile that fits is --tile {largest}" if largest >= MIN_SIZE
                else "no tile fits")
    return TooBig(f"{what}; {fits}" + ("; or use " + ", ".join(options) if options else ""),
                  largest)


def _style_refusal(args, objective, style_shapes, budget: float, tile, allows: str):
    """``None`` when every style's forward pass fits; the largest style size that fits
    (tiles, with no size asked for); else the :class:`TooBig` to raise."""
    explicit = args.style_size is not None or getattr(args, "style_scale", None) is not None
    for sh, sw in style_shapes:
        need = memory.estimate_transfer_bytes(sh, sw, layers=objective.style_layers)
        if need <= budget:
            continue
        scaled = need - WEIGHT_BYTES          # the estimate's part that follows the pixels
        edge = int(max(sh, sw) * (max(budget - WEIGHT_BYTES, 0) / scaled) ** 0.5 * 0.95) \
            // 16 * 16
        if tile and not explicit and edge >= MIN_SIZE:
            print(f"note: a {sw}×{sh} style would need {need / 2**30:.1f} GiB; using "
                  f"--style-size {edge}", file=sys.stderr)
            return edge
        how = "" if explicit else " (a style follows the content's long edge unless told)"
        return TooBig(f"a {sw}×{sh} style image{how} needs about {gib(need)}, more "
                      f"than the {gib(budget)} {allows} allows; use "
                      f"--style-size {max(edge, MIN_SIZE)} or smaller", edge)
    return None
