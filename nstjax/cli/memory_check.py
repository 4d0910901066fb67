"""The commands' memory check: refuse, before decoding anything, a run whose compiled
program would not fit, naming the largest ``--size`` (or ``--tile``) that does.

A closed-form screen (:func:`nstjax.run.memory.estimate_transfer_bytes`) settles the clear
cases; near the budget, XLA's own figures for the solve's compiled program decide
(:func:`compiled_transfer_memory`).  With ``--remat auto``, block checkpointing is taken
when the program without it would not fit.  The check returns the run's memory plan
(:func:`transfer_plan`), which the commands write beside their outputs with the measured
peak.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.cli.common import MIN_SIZE, UsageError, build_solver, style_size_of
from nstjax.io.image import ImageError, scaled_shape
from nstjax.io.weights import CONV_NAMES, VGGWeights
from nstjax.model.vgg import VGG_WIDTHS
from nstjax.objective.config import loss_weights
from nstjax.objective.terms import compute_targets
from nstjax.run import memory, memory_plan, transfer

# XLA:CPU's buffer analysis undercounts checkpointed programs: the measured peak resident
# memory of a value-and-gradient at 1024×768 was 1.84 GiB against 1.48 GiB estimated for
# --remat block (1.24×), at 2048×1536 7.22 against 5.78 GiB (1.25×), while --remat none's
# estimates held (1.78/1.76, 6.98/7.01 GiB).  Checkpointed estimates are scaled by this
# on a CPU; on accelerators they are taken as they are (not measured).
CPU_CHECKPOINT_UNDERCOUNT = 1.25
# VGG19's convolutions in float32.  Added to the closed-form estimate of a clearly small
# run (which counts them once), it stands for what the compiled step's figures add: the
# step's inputs hold the weights, and the styles' forward passes add the rest.
WEIGHT_BYTES = 4 * 20_024_384


def _undercount(policy: str) -> float:
    if policy != "none" and jax.default_backend() == "cpu":
        return CPU_CHECKPOINT_UNDERCOUNT
    return 1.0


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


def gib(n: float) -> str:
    """Bytes as GiB for a message: two significant figures below 10 GiB."""
    g = n / 2 ** 30
    return f"{g:.2g} GiB" if g < 10 else f"{g:.0f} GiB"


class TooBig(UsageError):
    """A run that would not fit in memory; ``largest`` is the largest ``--size`` that
    fits (0: none)."""
    def __init__(self, message: str, largest: int):
        super().__init__(message)
        self.largest = largest


def check_memory(args, objective, size: int, *, members: int = 1,
                 available: int | None = None):
    """Refuse, before decoding anything, a run whose compiled program would not fit.
    A quick closed-form screen first; a size that could come near the budget (80% of
    :func:`nstjax.run.memory.available_bytes`) is decided by XLA's own figures for the solve's
    compiled program (:func:`compiled_transfer_memory`).  With ``--remat auto`` (the
    default) the checkpointing policy ``"block"`` is taken when ``"none"`` would not fit.
    A refusal names the largest ``--size`` that fits and the options that would make
    this one fit.  ``available``: the bytes to plan for (default: measured now).

    Returns:
      ``(objective, plan)``: ``objective`` with its checkpointing policy chosen when
      ``--remat`` is auto, and the run's :class:`nstjax.run.memory_plan.MemoryPlan`.
    """
    if args.demo:
        shapes = [(3 * size // 4, size), (style_size_of(args, size),) * 2]
    else:
        try:
            shapes = [scaled_shape(args.content, size)]
            shapes += [scaled_shape(s, style_size_of(args, size)) for s in args.style]
        except ImageError as e:       # a bomb or a broken file, refused before decoding
            raise UsageError(str(e)) from None
    (h, w), style_shapes = shapes[0], shapes[1:]
    tile = getattr(args, "tile", None)
    if tile:                           # tiled: one tile at a time is solved
        h, w = min(h, tile), min(w, tile)
    available = available_memory(args) if available is None else available
    limit = memory_limit(args)
    budget = 0.8 * available
    allows = "--max-memory" if limit is not None else "this machine"
    style_refusal = _style_refusal(args, objective, style_shapes, budget, tile, allows)
    if style_refusal == "refit":                       # tiles: the style was made smaller
        return check_memory(args, objective, size, members=members, available=available)
    solver = build_solver(args)
    history = _history_bytes(solver, members, budget, allows)
    screen = memory.estimate_transfer_bytes(h, w, layers=objective.layers,
                                            members=members) + members * history
    if style_refusal is not None and screen <= 4 * budget:  # far beyond: the content first
        raise style_refusal
    auto = getattr(args, "remat", None) in (None, "auto")
    policies = ("none", "block") if auto else (objective.remat,)
    how = "compiled estimate"
    for policy in policies:
        candidate = dataclasses.replace(objective, remat=policy)
        if screen > 4 * budget:      # far out of reach: no need to compile to know
            need, how = screen, "estimate"
            continue
        if screen < 0.25 * budget and policy == "none":   # clearly fits: no compile
            step = memory.estimate_transfer_bytes(h, w, layers=objective.layers,
                                                  history_size=solver.history_size)
            program = memory.ProgramMemory(argument=step + WEIGHT_BYTES, output=0, temp=0,
                                           code=0, alias=0, scratch=0)
        else:
            program = compiled_transfer_memory(candidate, solver, (h, w), style_shapes)
        plan = transfer_plan(program, available, members=members, history=history,
                             undercount=_undercount(policy), image=4 * h * w * 3)
        need = plan.new_bytes(members)
        if need <= budget:
            if policy != objective.remat:
                print(f"note: {w}×{h} does not fit without checkpointing; using --remat "
                      f"{policy} ({need / 2**30:.1f} GiB)", file=sys.stderr)
            return candidate, plan
    edge = min(size, tile) if tile else size
    raise _too_big(f"{w}×{h} needs about {gib(need)} ({how}, checkpointing "
                   f"{candidate.remat}), more than the {gib(budget)} {allows} allows",
                   need, budget, edge, objective, tile, "block" in policies)


def _history_bytes(solver, members: int, budget: float, allows: str) -> int:
    """Bytes of one member's loss histories on the device (f32 per iteration: the total
    and three terms); refuses an ``--iters`` whose histories alone would not fit."""
    history = 16 * solver.max_iter
    if 3 * members * history > budget / 2:    # on the device, and twice on the host
        most = int(budget / 2 / (3 * members * 16)) // 1000 * 1000
        raise UsageError(f"--iters {solver.max_iter}: the loss histories alone would need "
                         f"{gib(3 * members * history)} of the {gib(budget)} {allows} "
                         f"allows; use --iters {most} or fewer")
    return history


def _too_big(what: str, need: float, budget: float, edge: int, objective, tile,
             tried_block: bool) -> TooBig:
    """The refusal: ``what``, the largest size (or tile) that fits and the options."""
    # memory grows with the pixels of content and styles alike (both follow --size), above
    # what no size changes: the programs' code and the network's weights
    fixed = min((3 * memory.CPU_COMPILE_BYTES if jax.default_backend() == "cpu" else 0)
                + WEIGHT_BYTES, 0.9 * need)
    largest = int(edge * (max(budget - fixed, 0) / (need - fixed)) ** 0.5 * 0.95) // 16 * 16
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
    """``None`` when every style's forward pass fits; ``"refit"`` after lowering
    ``args.style_size`` to the largest that fits (tiles, with no size asked for); else the
    :class:`TooBig` to raise."""
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
            args.style_size = edge
            return "refit"
        how = "" if explicit else " (a style follows the content's long edge unless told)"
        return TooBig(f"a {sw}×{sh} style image{how} needs about {gib(need)}, more "
                      f"than the {gib(budget)} {allows} allows; use "
                      f"--style-size {max(edge, MIN_SIZE)} or smaller", edge)
    return None


def transfer_plan(program: memory.ProgramMemory, available: int, *, members: int = 1,
                  history: int = 0, undercount: float = 1.0,
                  image: int = 0) -> memory_plan.MemoryPlan:
    """The memory plan of a run whose largest program is ``program`` (the solve's step,
    :func:`compiled_transfer_memory`), made before the weights are loaded: what is resident
    now, the programs' code (init, step and finish: :data:`nstjax.run.memory.CPU_COMPILE_BYTES`
    each on a CPU), the step's inputs (the weights among them) and what a call allocates
    (with the CPU's first-call growth), ``undercount`` times for checkpointed programs; the
    host keeps each member's image and histories."""
    cpu = jax.default_backend() == "cpu"
    first = memory.CPU_FIRST_CALL if cpu else 1.0
    step = undercount * (program.argument + first * program.new)
    return memory_plan.MemoryPlan(
        resident=memory.resident_bytes(), compile=3 * memory.CPU_COMPILE_BYTES if cpu else 0,
        programs=((0, int(step)),), available=int(available),
        host_per_member=2 * (image + history))


def compiled_transfer_memory(objective, solver, shape: tuple,
                             style_shapes) -> memory.ProgramMemory:
    """XLA's memory figures for one chunk of the solve (``transfer_advance``) for a ``shape``
    content image, inputs included (nothing is allocated or run).

    The program is lowered on abstract arguments (the real VGG19's shapes), so it is the
    one the run compiles; with the persistent compilation cache on, the run reuses it.
    """
    sds = jax.ShapeDtypeStruct
    params, cin = {}, 3
    for name in CONV_NAMES:
        cout = VGG_WIDTHS[int(name[5]) - 1]
        params[name] = {"kernel": sds((3, 3, cin, cout), jnp.float32),
                        "bias": sds((cout,), jnp.float32)}
        cin = cout
    vgg = VGGWeights(params=params, mean=sds((3,), jnp.float32), std=sds((3,), jnp.float32),
                     scale=sds((), jnp.float32), bgr=sds((), jnp.bool_))
    content = sds(tuple(shape) + (3,), jnp.float32)
    styles = [sds(tuple(s) + (3,), jnp.float32) for s in style_shapes]
    weights = loss_weights(objective, n_styles=len(styles))
    key = jax.random.PRNGKey(0)
    targets = jax.eval_shape(lambda v, c, s: compute_targets(v, c, s, objective=objective),
                             vgg, content, styles)
    state, problem = jax.eval_shape(
        lambda x, p: transfer.transfer_init(x, p, solver, objective=objective),
        content, transfer.Problem(vgg, targets, weights, key))
    with warnings.catch_warnings():   # JAX's notes on index dtypes of huge shapes
        warnings.simplefilter("ignore")
        compiled = transfer.advance_jit.lower(state, problem, solver, np.int32(1),
                                              objective=objective).compile()
    args = (state, vgg, targets, problem.weights, content, styles)
    return memory.program_memory(compiled, args=args)
