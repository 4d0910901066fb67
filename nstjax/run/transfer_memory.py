"""Whether one transfer fits in memory, decided before any work, for every caller alike.

:func:`plan_transfer` is the single decision the command line, the web page and Python use:
a closed-form screen (:func:`nstjax.run.memory.estimate_transfer_bytes`) settles the clear
cases; near the budget, XLA's own figures for the solve's compiled program decide
(:func:`compiled_transfer_memory`, lowered on abstract arguments, so nothing is allocated).
With ``remat_auto``, block checkpointing is taken when the program without it would not
fit.  The answer carries the run's :class:`nstjax.run.memory_plan.MemoryPlan`, which callers
write beside their outputs with the measured peak, and, for a refusal, the largest long
edge that fits (:func:`largest_edge`).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.io.weights import CONV_NAMES, VGGWeights
from nstjax.model.layers import PARAMETER_COUNT
from nstjax.model.vgg import VGG_WIDTHS
from nstjax.objective.config import Objective, loss_weights
from nstjax.objective.terms import compute_targets
from nstjax.run import memory, memory_plan, transfer

# XLA:CPU's buffer analysis undercounts checkpointed programs: the measured peak resident
# memory of a value-and-gradient at 1024×768 was 1.84 GiB against 1.48 GiB estimated for
# remat "block" (1.24×), at 2048×1536 7.22 against 5.78 GiB (1.25×), while "none"'s
# estimates held (1.78/1.76, 6.98/7.01 GiB).  Checkpointed estimates are scaled by this
# on a CPU; on accelerators they are taken as they are (not measured).
CPU_CHECKPOINT_UNDERCOUNT = 1.25
# VGG19's convolutions in float32.  Added to the closed-form estimate of a clearly small
# run (which counts them once), it stands for what the compiled step's figures add: the
# step's inputs hold the weights, and the styles' forward passes add the rest.
WEIGHT_BYTES = 4 * PARAMETER_COUNT
# The share of the available memory a run may plan to use.
BUDGET_FRACTION = 0.8


class TransferMemory(NamedTuple):
    """:func:`plan_transfer`'s answer.

    Attributes:
      fits: whether the run's new bytes are within ``budget``.
      objective: the objective with its checkpointing policy chosen (``remat_auto``).
      plan: the run's memory plan (``None`` when the screen alone refused it).
      need: the bytes the run would add at its peak (the last policy tried).
      budget: :data:`BUDGET_FRACTION` of the available bytes.
      how: ``"estimate"`` (closed form) or ``"compiled estimate"`` (XLA's figures).
    """

    fits: bool
    objective: Objective
    plan: memory_plan.MemoryPlan | None
    need: float
    budget: float
    how: str


def undercount(policy: str) -> float:
    """The factor XLA's figures for a program under checkpointing ``policy`` are scaled by."""
    if policy != "none" and jax.default_backend() == "cpu":
        return CPU_CHECKPOINT_UNDERCOUNT
    return 1.0


def history_bytes(max_iter: int) -> int:
    """Bytes of one member's loss histories on the device (f32 per iteration: the total
    and three terms)."""
    return 16 * int(max_iter)


def plan_transfer(objective: Objective, solver, shape: tuple, style_shapes, *,
                  available: int | None = None, members: int = 1, remat_auto: bool = True,
                  history: int | None = None) -> TransferMemory:
    """Whether a transfer of a ``shape`` content (``(H, W)``) with styles of
    ``style_shapes`` fits in ``available`` bytes, ``members`` at once.

    Args:
      objective: the run's objective; with ``remat_auto`` its ``remat`` is chosen here
        ("none", else "block" when "none" would not fit).
      solver: the run's :class:`nstjax.Solver` (its history size and iteration count).
      shape: the content's ``(H, W)`` as solved (one tile's under tiling).
      style_shapes: each style's ``(H, W)``.
      available: bytes the run may add (default: what the machine has free now,
        :func:`nstjax.run.memory.available_bytes`).
      members: images solved at once (sweeps).
      history: bytes of one member's loss histories (default :func:`history_bytes`).
    """
    h, w = shape
    available = memory.available_bytes() if available is None else available
    budget = BUDGET_FRACTION * available
    history = history_bytes(solver.max_iter) if history is None else history
    screen = memory.estimate_transfer_bytes(h, w, layers=objective.layers,
                                            members=members) + members * history
    policies = ("none", "block") if remat_auto else (objective.remat,)
    need, how, plan, candidate = screen, "estimate", None, objective
    for policy in policies:
        candidate = dataclasses.replace(objective, remat=policy)
        if screen > 4 * budget:      # far out of reach: no need to compile to know
            need, how = screen, "estimate"
            continue
        if screen < 0.25 * budget and policy == "none":   # clearly fits: no compile
            how = "estimate"
            step = memory.estimate_transfer_bytes(h, w, layers=objective.layers,
                                                  history_size=solver.history_size)
            program = memory.ProgramMemory(argument=step + WEIGHT_BYTES, output=0, temp=0,
                                           code=0, alias=0, scratch=0)
        else:
            how = "compiled estimate"
            program = compiled_transfer_memory(candidate, solver, (h, w), style_shapes)
        plan = transfer_plan(program, available, members=members, history=history,
                             undercount=undercount(policy), image=4 * h * w * 3)
        need = plan.new_bytes(members)
        if need <= budget:
            return TransferMemory(True, candidate, plan, need, budget, how)
    return TransferMemory(False, candidate, plan, need, budget, how)


def gib(n: float) -> str:
    """Bytes as GiB for a message: two significant figures below 10 GiB."""
    g = n / 2 ** 30
    return f"{g:.2g} GiB" if g < 10 else f"{g:.0f} GiB"


def does_not_fit(fit: TransferMemory, shape: tuple, allows: str = "this machine") -> str:
    """The first half of every refusal's line: ``"W×H needs about X GiB (how, checkpointing
    P), more than the Y GiB <allows> allows"``; callers add the largest size that fits,
    named as their users set it (a flag, a field)."""
    h, w = shape
    return (f"{w}×{h} needs about {gib(fit.need)} ({fit.how}, checkpointing "
            f"{fit.objective.remat}), more than the {gib(fit.budget)} {allows} allows")


def largest_edge(need: float, budget: float, edge: int) -> int:
    """The largest long edge (a multiple of 16) whose run fits ``budget``, for a run of long
    edge ``edge`` that needs ``need`` bytes: memory grows with the pixels of content and
    styles alike (both follow the size), above what no size changes (the programs' code
    and the network's weights)."""
    fixed = min((3 * memory.CPU_COMPILE_BYTES if jax.default_backend() == "cpu" else 0)
                + WEIGHT_BYTES, 0.9 * need)
    return int(edge * (max(budget - fixed, 0) / (need - fixed)) ** 0.5 * 0.95) // 16 * 16


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


def abstract_vgg() -> VGGWeights:
    """The real VGG19's parameters as ``ShapeDtypeStruct`` leaves: what a program is lowered
    on to read XLA's figures without loading or allocating anything."""
    sds = jax.ShapeDtypeStruct
    params, cin = {}, 3
    for name in CONV_NAMES:
        cout = VGG_WIDTHS[int(name[5]) - 1]
        params[name] = {"kernel": sds((3, 3, cin, cout), jnp.float32),
                        "bias": sds((cout,), jnp.float32)}
        cin = cout
    return VGGWeights(params=params, mean=sds((3,), jnp.float32), std=sds((3,), jnp.float32),
                      scale=sds((), jnp.float32), bgr=sds((), jnp.bool_))


def compiled_transfer_memory(objective, solver, shape: tuple,
                             style_shapes) -> memory.ProgramMemory:
    """XLA's memory figures for one chunk of the solve (``transfer_advance``) for a ``shape``
    content image, inputs included (nothing is allocated or run).

    The program is lowered on abstract arguments (the real VGG19's shapes), so it is the
    one the run compiles; with the persistent compilation cache on, the run reuses it.
    """
    sds = jax.ShapeDtypeStruct
    vgg = abstract_vgg()
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
