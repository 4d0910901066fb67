"""Sweeps: K settings, one compiled, ``vmap``-ped program, sharded across devices.

Every sweepable setting is a leaf of :class:`nstjax.LossWeights`; a sweep stacks K
copies of it (a grid or zipped lists of values), computes the VGG targets once and runs
the steps of :mod:`nstjax.run.transfer` under ``vmap`` over the K axis, driven by the same host
loop as a single run (:func:`nstjax.run.transfer.drive`).  A vmapped ``while_loop`` runs until its last member stops;
JAX's batching rule selects the old carry for members whose condition is false, so a
converged member does not move and keeps its own iteration count.

The K axis is sharded over the local devices with a ``Mesh`` and ``NamedSharding``.  Across
hosts (a GPU cluster or TPU slice), call ``jax.distributed.initialize()`` first: each
process then runs its slice of the K members on its own devices and the results are
gathered with ``multihost_utils.process_allgather`` — JAX's multi-controller runtime is the
engine.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nstjax.io.image_arrays import check_image_array
from nstjax.objective.config import LossWeights, Objective, replace_weight
from nstjax.objective.config import loss_weights as make_loss_weights
from nstjax.objective.terms import compute_targets
from nstjax.run import hooks, memory, memory_plan
from nstjax.run.transfer import (
    MEMBER_AXES,
    Problem,
    Program,
    as_image_list,
    drive,
    initial_image,
    transfer_advance,
    transfer_finish,
    transfer_init,
)
from nstjax.solve.minimize import status_names
from nstjax.solve.solver import Solver


class SweepResult(NamedTuple):
    """Outcome of :func:`sweep` (leading axis K).

    Attributes:
      images: ``f32[K, H, W, 3]``.
      loss: ``f32[K]``; history: ``f32[K, max_iter]``; n_iter, status: ``i32[K]``.
      terms: ``{"content", "style", "tv"}: f32[K]``.
      settings: list of K dicts, the swept values of each member.
      weights: the stacked :class:`LossWeights`.
      term_history: ``{"content", "style", "tv"}: f32[K, max_iter]``, after each iteration.
      memory: ``{planned_bytes, peak_bytes, available_bytes}``: the plan's peak for one
        chunk, the measured peak so far (:func:`nstjax.run.memory.measured_peak_bytes`),
        the memory that was free.
    """

    images: np.ndarray
    loss: np.ndarray
    history: np.ndarray
    n_iter: np.ndarray
    status: np.ndarray
    terms: dict
    settings: list
    weights: LossWeights
    term_history: dict = {}
    memory: dict = {}

    @property
    def status_names(self) -> list:
        """Why each member stopped, by name (``res.status`` holds the codes)."""
        return status_names(self.status)


def member_settings(values: Mapping[str, Sequence], *, mode: str = "grid") -> list[dict]:
    """Expand ``{"style": [1, 10], "tv": [0, 1]}`` into K member dicts (grid or zip)."""
    if not values:
        raise ValueError("nothing to sweep")
    names = list(values)
    lists = [list(values[n]) for n in names]
    if mode == "grid":
        combos = itertools.product(*lists)
    elif mode == "zip":
        if len({len(v) for v in lists}) != 1:
            raise ValueError("zipped sweeps need lists of equal length")
        combos = zip(*lists)
    else:
        raise ValueError(f"mode must be 'grid' or 'zip', not {mode!r}")
    members = [dict(zip(names, c)) for c in combos]
    if not members:
        raise ValueError("every swept setting needs at least one value")
    return members


def stack_loss_weights(base: LossWeights, members: list[dict]) -> LossWeights:
    """K LossWeights, one per member dict, stacked along a new leading axis."""
    each = []
    for m in members:
        weights = base
        for name, value in m.items():
            weights = replace_weight(weights, name, value)
        each.append(weights)
    return jax.tree.map(lambda *xs: jnp.stack(xs), *each)


@functools.lru_cache(maxsize=32)  # one set of programs per (objective, mesh): later sweeps reuse them
def _programs(objective: Objective, mesh: Mesh | None):
    """The compiled, K-batched steps of :mod:`nstjax.run.transfer` (``vmap`` over the
    problem's weights: :data:`MEMBER_AXES`)."""
    init = jax.vmap(functools.partial(transfer_init, objective=objective),
                    in_axes=(None, MEMBER_AXES, None), out_axes=(0, MEMBER_AXES))
    advance = jax.vmap(functools.partial(transfer_advance, objective=objective),
                       in_axes=(0, MEMBER_AXES, None, None))
    finish = jax.vmap(functools.partial(transfer_finish, objective=objective,
                                        branchless=True),
                      in_axes=(0, MEMBER_AXES, None))
    if mesh is None:
        return jax.jit(init), jax.jit(advance), jax.jit(finish)
    k = NamedSharding(mesh, PartitionSpec("k"))
    every = NamedSharding(mesh, PartitionSpec())          # the shared leaves, replicated
    problem = Problem(vgg=every, targets=every, weights=k, key=every)
    return (jax.jit(init, out_shardings=(k, problem)), jax.jit(advance, out_shardings=k),
            jax.jit(finish, out_shardings=k))


def plan_sweep(vgg, content, styles, objective: Objective, solver: Solver, *,
               weights: LossWeights | None = None, n_styles: int | None = None,
               available: int | None = None) -> memory_plan.MemoryPlan:
    """The memory plan of a sweep: its peak as a function of the members run at once.

    The batched programs (:func:`nstjax.run.transfer.transfer_init` and ``_advance`` under
    ``vmap``; ``_finish``, one evaluation without the optimiser's step, needs less than
    ``_advance``) are compiled for 1 and 2 members; each one's memory grows
    linearly in the member count (every member's activations, gradients and optimiser state
    are stacked), so the two give its fixed and per-member bytes
    (:func:`nstjax.run.memory_plan.program_line`).  What compiling the programs keeps is
    measured on the first compilation (on the CPU; an accelerator's memory does not hold
    code), and counted for a chunk of any other size; the host keeps each member's image
    and histories.

    Args:
      available: bytes to plan for (default :func:`nstjax.run.memory.available_bytes`, per
        device).

    Returns:
      A :class:`nstjax.run.memory_plan.MemoryPlan` for one device.
    """
    styles = as_image_list(styles)
    content = jnp.asarray(content, jnp.float32)
    base = (make_loss_weights(objective, n_styles=n_styles or len(styles))
            if weights is None else weights)
    targets = jax.eval_shape(lambda: compute_targets(vgg, content, styles, objective=objective))
    init, advance, _ = _programs(objective, None)
    key = jax.random.PRNGKey(0)
    resident_inputs = sum(memory.leaf_sizes((vgg, targets, content, styles)))

    def compile_all(k):       # finish (one evaluation, no optimiser step) needs less
        weights_k = jax.tree.map(lambda a: jax.ShapeDtypeStruct((k,) + jnp.shape(a),
                                                                jnp.result_type(a)), base)
        problem = Problem(vgg, targets, weights_k, key)
        lowered = init.lower(content, problem, solver)
        state, problem = jax.eval_shape(init, content, problem, solver)
        return [memory.program_memory(c.compile()) for c in
                (lowered, advance.lower(state, problem, solver, np.int32(1)))]

    before = memory.resident_bytes()
    one = compile_all(1)                  # what compiling keeps: measured on the first
    compiled = max(memory.resident_bytes() - before, 0) if jax.default_backend() == "cpu" else 0
    two = compile_all(2)
    image = int(np.prod(content.shape)) * 4
    history = 4 * solver.max_iter * 4      # f32 per iteration: the total and three terms
    return memory_plan.MemoryPlan(
        resident=memory.resident_bytes(), compile=compiled,
        programs=tuple(memory_plan.program_line(a, b, resident_inputs=resident_inputs)
                       for a, b in zip(one, two)),
        available=memory.available_bytes() if available is None else int(available),
        host_per_member=2 * (image + history), compiled=(1, 2))


def members_that_fit(vgg, content, styles, objective: Objective, solver: Solver, *,
                     n_styles: int | None = None, devices=None,
                     available: int | None = None) -> int:
    """How many sweep members fit in memory at once on ``devices`` (default: all local
    ones), from :func:`plan_sweep`; ``0`` when not even one does."""
    devices = devices or jax.local_devices()
    plan = plan_sweep(vgg, content, styles, objective, solver, n_styles=n_styles,
                      available=available)
    return plan.members_that_fit() * len(devices)


def sweep(vgg, content, style, values: Mapping[str, Sequence], *, key,
          objective: Objective = Objective(), weights: LossWeights | None = None,
          solver: Solver = Solver(), init: str = "content", mode: str = "grid",
          chunk: int | None = None, devices=None, log=None,
          callbacks: hooks.Callbacks | None = None,
          available: int | None = None) -> SweepResult:
    """Run K style transfers, one per setting, as one vmapped program per micro-batch.

    Args:
      vgg: the network's parameters.
      content: ``f32[H, W, 3]``.
      style: a style image or a list of them (all members share them).
      values: ``{leaf: list of values}`` over :data:`nstjax.objective.config.SWEEPABLE` leaves of
        :class:`LossWeights` (``style_weight`` is β, the balance factor; ``style_mix`` the
        fusion weights; ``style_layer_weights`` per-layer weight vectors) or
        ``hyper.<method>.<param>``.
      key: PRNG key, shared by all members (member k equals ``stylize`` with this key).
      objective: the static :class:`Objective`.
      weights: the base :class:`LossWeights` the members vary (default
        :func:`nstjax.loss_weights`).
      solver: the :class:`Solver`.
      init: a named start of :data:`nstjax.run.start.INITS` (``"content"``, ``"grey"``, ...).
      mode: ``"grid"`` (Cartesian product) or ``"zip"`` (equal-length lists).
      chunk: members per compiled call (default, and at most: all that fit, see
        :func:`plan_sweep`).
      devices: local devices to shard K over (default: all).
      log: optional ``print``-like function for the plan.
      callbacks: optional host :class:`nstjax.run.hooks.Callbacks`; ``progress`` receives the
        chunk's iteration and loss arrays; ``should_stop`` ends every member at once, each
        keeping its current image.
      available: bytes of memory to plan for per device (default: what the machine has
        free, :func:`nstjax.run.memory.available_bytes`).

    Returns:
      A :class:`SweepResult` with K members, in the order of :func:`member_settings`.
    """
    content = check_image_array(content, "content")
    styles = as_image_list(style)
    members = member_settings(values, mode=mode)
    k_total = len(members)
    base = make_loss_weights(objective, n_styles=len(styles)) if weights is None else weights
    stacked = stack_loss_weights(base, members)

    # Multi-host: each process takes its contiguous slice of the members; slices are padded
    # to ``per_proc`` rows (the allgather needs equal shapes; a process whose slice is empty
    # re-runs the last member) and the padding is dropped after the gather.
    n_proc, proc = jax.process_count(), jax.process_index()
    per_proc = math.ceil(k_total / n_proc)
    lo, hi = min(proc * per_proc, k_total), min((proc + 1) * per_proc, k_total)
    mine = hi - lo
    lo = min(lo, k_total - 1)

    devices = list(devices or jax.local_devices())
    plan = plan_sweep(vgg, content, styles, objective, solver, weights=base,
                      available=available)
    fit = plan.members_that_fit() * len(devices)
    if fit < 1:
        raise ValueError(f"not even one sweep member fits in memory at "
                         f"{content.shape[1]}×{content.shape[0]}: it needs about "
                         f"{plan.new_bytes(1) / 2**30:.1f} GiB of the "
                         f"{plan.available / 2**30:.1f} GiB free; use a smaller size")
    asked, span = chunk, max(hi - lo, 1)
    chunk = min(chunk or fit, fit, span)
    chunk = math.ceil(span / math.ceil(span / chunk))   # equal chunks, not one mostly padding
    chunk = max(len(devices), (chunk // len(devices)) * len(devices))  # whole devices
    if log:
        log(f"sweep: {k_total} members ({mine} on this process), {fit} fit in memory at "
            f"once on {len(devices)} device(s); running in chunks of {chunk}"
            + (f" (--chunk {asked} would not fit)" if asked and asked > fit else ""))

    targets = compute_targets(vgg, content, styles, objective=objective)   # once, shared
    k_init, k_loss = jax.random.split(key)
    x0 = initial_image(content, styles, init, k_init)
    mesh = Mesh(np.array(devices), ("k",)) if len(devices) > 1 else None
    init, advance, finish = _programs(objective, mesh)
    members_done = callbacks.snapshot if callbacks else None
    callbacks = hooks.Callbacks(progress=callbacks.progress, should_stop=callbacks.should_stop) \
        if callbacks else None     # no snapshots inside a batch

    outs = []
    for start in range(lo, hi, chunk):
        idx = np.arange(start, min(start + chunk, hi))
        pad = np.concatenate([idx, np.full(chunk - len(idx), idx[-1])])  # fixed shape
        lw = jax.tree.map(lambda a: a[pad], stacked)
        if mesh is not None:
            lw = jax.device_put(lw, NamedSharding(mesh, PartitionSpec("k")))
        program = Program(
            init=lambda lw=lw: init(x0, Problem(vgg, targets, lw, k_loss), solver),
            advance=lambda state, p, until: advance(state, p, solver, until),
            finish=lambda state, p: finish(state, p, solver))
        res, terms, _ = drive(program, solver.max_iter, callbacks)
        outs.append(jax.tree.map(lambda a: np.asarray(a)[: len(idx)], (res, terms)))
        if members_done is not None:
            members_done(idx, outs[-1][0].x)
        if callbacks is not None and callbacks.should_stop is not None \
                and callbacks.should_stop():
            break  # the members not yet run are not run
    res, terms = jax.tree.map(lambda *a: np.concatenate(a), *outs)
    if n_proc > 1:
        from jax.experimental import multihost_utils
        res, terms = jax.tree.map(
            lambda a: np.concatenate([a, np.repeat(a[-1:], per_proc - len(a), 0)]),
            (res, terms))
        res, terms = multihost_utils.process_allgather((res, terms), tiled=True)
        res, terms = jax.tree.map(lambda a: np.asarray(a)[:k_total], (res, terms))
    done = len(res.x)
    return SweepResult(images=res.x, loss=res.value, history=res.history, n_iter=res.n_iter,
                       status=res.status, terms=terms, settings=members[:done],
                       weights=jax.tree.map(lambda a: a[:done], stacked),
                       term_history=res.aux_history,
                       memory=plan.record(chunk // len(devices),
                                          peak=memory.measured_peak_bytes()))
