"""Whether a Neural Neighbor Style Transfer run (:func:`nstjax.nnst`) fits in memory,
decided before any work from XLA's figures for its largest programs.

NNST's memory is not the transfer's: at full size it holds the style's features at every
matched layer for each of its four rotations (the feature-splitting pass's references),
fits the image through VGG19's backward pass there, and at each scale searches the style's
hypercolumns in blocks (:mod:`nstjax.losses.neighbors`).  :func:`plan_nnst` reads XLA's
figures for the four programs that dominate (:func:`nstjax.run.nnst.program_memory`: the
finest scale's neighbour search and fit, the style's features, the last pass's fit),
lowered on abstract arguments, so nothing is allocated; with the persistent
compilation cache on, the run reuses what they compile.  The answer is the run's
:class:`nstjax.run.memory_plan.MemoryPlan` (one member), which the command line and the web
page write beside the result with the measured peak, and refuse by when it does not fit.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from nstjax.run import memory, memory_plan
from nstjax.run import nnst as nnst_run
from nstjax.run.transfer_memory import BUDGET_FRACTION, WEIGHT_BYTES, gib

def plan_nnst(content_shape: tuple, style_shape: tuple, *, flip: bool = True,
              block: int | None = None, available: int | None = None
              ) -> memory_plan.MemoryPlan:
    """The memory plan of :func:`nstjax.nnst` on a ``content_shape`` content with a
    ``style_shape`` style (both ``(H, W)``): what is resident now, what compiling the
    programs keeps (measured on a CPU: the compiler's arenas, and the code, which the run
    loads from the persistent cache), the largest of
    :func:`nstjax.run.nnst.program_memory` (its inputs, the weights among them, and what a call allocates,
    with the CPU's first-call growth), and the host's copies of the result (image, raw
    image and the colour-matched one)."""
    cpu = jax.default_backend() == "cpu"
    first = memory.CPU_FIRST_CALL if cpu else 1.0
    resident = memory.resident_bytes()
    programs = nnst_run.program_memory(content_shape, style_shape, flip=flip, block=block)
    kept = max(memory.resident_bytes() - resident, 0) if cpu else 0
    step = max(p.argument + first * p.new for p in programs)
    h, w = content_shape
    return memory_plan.MemoryPlan(
        resident=resident, compile=kept,
        programs=((0, int(step)),),
        available=int(memory.available_bytes() if available is None else available),
        host_per_member=3 * 4 * h * w * 3)


def estimate_nnst_bytes(height: int, width: int) -> int:
    """A closed-form screen of what an NNST run adds at ``height × width`` (style at the
    same size), without compiling: four forward passes' activations to relu4_3 (the style's
    rotations, whose features the last pass keeps) and the weights.  It undercounts small
    runs (their programs' code) and overcounts large ones by about 1.1×; it only settles
    the runs far out of reach."""
    return 16 * memory.activation_elements(height, width, "relu4_3") + WEIGHT_BYTES


class NNSTMemory(NamedTuple):
    """:func:`check_nnst`'s answer: whether the run fits (``need`` new bytes against
    ``budget``), its plan (``None`` when the screen alone refused it), and ``how`` the need
    was found (``"estimate"``: :func:`estimate_nnst_bytes`; ``"compiled estimate"``)."""

    fits: bool
    plan: memory_plan.MemoryPlan | None
    need: float
    budget: float
    how: str


def check_nnst(content_shape: tuple, style_shape: tuple, *, flip: bool = True,
               block: int | None = None, available: int | None = None) -> NNSTMemory:
    """Whether :func:`nstjax.nnst` fits in :data:`BUDGET_FRACTION` of ``available`` bytes
    (default: what the machine has free now): :func:`plan_nnst`, unless the closed-form
    screen is more than four times the budget."""
    available = memory.available_bytes() if available is None else int(available)
    budget = BUDGET_FRACTION * available
    screen = estimate_nnst_bytes(*content_shape)
    if screen > 4 * budget:
        return NNSTMemory(False, None, screen, budget, "estimate")
    plan = plan_nnst(content_shape, style_shape, flip=flip, block=block, available=available)
    need = plan.new_bytes(1)
    return NNSTMemory(need <= budget, plan, need, budget, "compiled estimate")


def does_not_fit(fit: NNSTMemory, shape: tuple, allows: str = "this machine") -> str:
    """The first half of a refusal's line, as the transfer's
    (:func:`nstjax.run.transfer_memory.does_not_fit`)."""
    h, w = shape
    return (f"{w}×{h} needs about {gib(fit.need)} ({fit.how}, --preset nnst), more than "
            f"the {gib(fit.budget)} {allows} allows")
