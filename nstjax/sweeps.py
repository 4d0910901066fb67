"""Sweeps: K settings, one compiled, ``vmap``-ped program, sharded across devices.

Every sweepable setting is a leaf of :class:`nstjax.transfer.LossWeights`; a sweep stacks K
copies of it (a grid or zipped lists of values), computes the VGG targets once and runs
``vmap(solve)`` over the K axis.  A vmapped ``while_loop`` runs until its last member stops;
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

from nstjax import memory
from nstjax.transfer import (LossWeights, StyleConfig, auto_scales, compute_targets,
                             initial_image, objective_terms, solve)

SWEEPABLE = ("content", "style", "tv", "content_layers", "style_layers", "mix", "scales",
             "blend")


class SweepResult(NamedTuple):
    """Outcome of :func:`sweep` (leading axis K).

    Attributes:
      images: ``f32[K, H, W, 3]``.
      loss: ``f32[K]``; history: ``f32[K, max_iter]``; n_iter, status: ``i32[K]``.
      terms: ``{"content", "style", "tv"}: f32[K]``.
      settings: list of K dicts, the swept values of each member.
      loss_weights: the stacked :class:`LossWeights`.
    """

    images: np.ndarray
    loss: np.ndarray
    history: np.ndarray
    n_iter: np.ndarray
    status: np.ndarray
    terms: dict
    settings: list
    loss_weights: LossWeights


def _set_leaf(lw: LossWeights, name: str, value) -> LossWeights:
    """Set ``style`` / ``style_layers`` / ``hyper.mmd-poly.c`` of one LossWeights."""
    if name.startswith("hyper."):
        _, method, param = name.split(".", 2)
        if method not in lw.hyper or param not in lw.hyper[method]:
            raise ValueError(f"cannot sweep {name!r}: no such hyper-parameter in this config")
        new = jnp.asarray(value, jnp.float32)
        if new.shape != jnp.shape(lw.hyper[method][param]):
            raise ValueError(f"{name}: each value must be a number, got shape {new.shape}")
        hyper = {m: dict(p) for m, p in lw.hyper.items()}
        hyper[method][param] = new
        return lw._replace(hyper=hyper)
    if name not in SWEEPABLE:
        raise ValueError(f"cannot sweep {name!r}; sweepable: {', '.join(SWEEPABLE)}, "
                         "hyper.<method>.<param>")
    old = getattr(lw, name)
    new = jnp.asarray(value, jnp.float32)
    if new.shape != old.shape:
        raise ValueError(f"{name}: each value must have shape {old.shape}, got {new.shape}")
    if not bool(jnp.all(jnp.isfinite(new) & (new >= 0))):
        raise ValueError(f"{name}: values must be finite and >= 0")
    return lw._replace(**{name: new})


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
        lw = base
        for name, value in m.items():
            lw = _set_leaf(lw, name, value)
        each.append(lw)
    return jax.tree.map(lambda *xs: jnp.stack(xs), *each)


@functools.lru_cache(maxsize=32)  # one jit per (static config, mesh): later sweeps reuse it
def _program(config: StyleConfig, mesh: Mesh | None):
    def one(x0, weights, targets, lw, settings, key):
        if config.auto_scale:  # as stylize does: λ from gradient norms at x0, per member
            lw = lw._replace(scales=auto_scales(x0, weights, targets, lw, config=config,
                                                key=key))
        res = solve(x0, weights, targets, lw, key, config=config, settings=settings)
        terms = objective_terms(res.x, weights, targets, lw, config=config, key=key)
        return res, {k: v for k, v in terms.items() if k != "total"}

    batched = jax.vmap(one, in_axes=(None, None, None, 0, None, None))
    if mesh is None:
        return jax.jit(batched)
    k_sharded = NamedSharding(mesh, PartitionSpec("k"))
    return jax.jit(batched, out_shardings=k_sharded)


def members_that_fit(height: int, width: int, config: StyleConfig, *, devices=None) -> int:
    """How many sweep members fit in one device's memory at once (at least 1)."""
    devices = devices or jax.local_devices()
    layers = config.content_layers + config.style_layers
    one = memory.estimate_transfer_bytes(height, width, layers=layers,
                                         history_size=config.history_size)
    fixed = memory.estimate_transfer_bytes(height, width, layers=layers, members=0)
    have = 0.8 * memory.available_bytes()
    per_device = max(1, int((have - fixed) // max(one - fixed, 1)))
    return per_device * len(devices)


def sweep(weights, content, style, values: Mapping[str, Sequence], *,
          config: StyleConfig = StyleConfig(), mode: str = "grid", key=None,
          chunk: int | None = None, devices=None, log=None) -> SweepResult:
    """Run K style transfers, one per setting, as one vmapped program per micro-batch.

    Args:
      weights: VGG weights.
      content: ``f32[H, W, 3]``.
      style: a style image or a list of them (all members share them).
      values: ``{leaf: list of values}`` over :data:`SWEEPABLE` leaves of
        :class:`LossWeights` (``style`` is β, the balance factor; ``mix`` the fusion weights;
        ``style_layers`` per-layer weight vectors) or ``hyper.<method>.<param>``.
      config: the static settings and the base weights.
      mode: ``"grid"`` (Cartesian product) or ``"zip"`` (equal-length lists).
      key: PRNG key, shared by all members (member k equals ``stylize`` with this key).
      chunk: members per compiled call (default: all that fit, see :func:`members_that_fit`).
      devices: local devices to shard K over (default: all).
      log: optional ``print``-like function for the plan.

    Returns:
      A :class:`SweepResult` with K members, in the order of :func:`member_settings`.
    """
    key = jax.random.PRNGKey(0) if key is None else key
    content = jnp.asarray(content, jnp.float32)
    styles = [jnp.asarray(style, jnp.float32)] if getattr(style, "ndim", 0) == 3 else \
        [jnp.asarray(s, jnp.float32) for s in style]
    members = member_settings(values, mode=mode)
    k_total = len(members)
    base = config.loss_weights(len(styles))
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
    fit = members_that_fit(*content.shape[:2], config, devices=devices)
    chunk = min(chunk or fit, max(hi - lo, 1))
    chunk = max(len(devices), (chunk // len(devices)) * len(devices))  # whole devices
    if log:
        log(f"sweep: {k_total} members ({mine} on this process), {fit} fit in memory at "
            f"once on {len(devices)} device(s); running in chunks of {chunk}")

    targets = compute_targets(weights, content, styles, config=config)   # once, shared
    k_init, k_loss = jax.random.split(key)
    x0 = initial_image(content, styles, config.init, k_init)
    mesh = Mesh(np.array(devices), ("k",)) if len(devices) > 1 else None
    program = _program(config.static_part(), mesh)
    settings = config.solver_settings()

    outs = []
    for start in range(lo, hi, chunk):
        idx = np.arange(start, min(start + chunk, hi))
        pad = np.concatenate([idx, np.full(chunk - len(idx), idx[-1])])  # fixed chunk shape
        lw = jax.tree.map(lambda a: a[pad], stacked)
        if mesh is not None:
            lw = jax.device_put(lw, NamedSharding(mesh, PartitionSpec("k")))
        res, terms = program(x0, weights, targets, lw, settings, k_loss)
        outs.append(jax.tree.map(lambda a: np.asarray(a)[: len(idx)], (res, terms)))
    res, terms = jax.tree.map(lambda *a: np.concatenate(a), *outs)
    if n_proc > 1:
        from jax.experimental import multihost_utils
        res, terms = jax.tree.map(
            lambda a: np.concatenate([a, np.repeat(a[-1:], per_proc - len(a), 0)]),
            (res, terms))
        res, terms = multihost_utils.process_allgather((res, terms), tiled=True)
        res, terms = jax.tree.map(lambda a: np.asarray(a)[:k_total], (res, terms))
    return SweepResult(images=res.x, loss=res.value, history=res.history, n_iter=res.n_iter,
                       status=res.status, terms=terms, settings=members,
                       loss_weights=stacked)
