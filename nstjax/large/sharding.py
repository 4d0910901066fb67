"""One big image over several devices: its rows split across a device mesh (``jax.sharding``).

A single image whose activations do not fit one device is split along its height over the
local devices: every activation, gradient and optimiser buffer of the image is split the
same way, so ``n`` devices hold an ``n`` times larger image (the VGG weights and the style
targets are replicated; they are small beside a big image's activations).  Nothing in the
objective changes: the compiled programs of :mod:`nstjax.run.transfer` take the placement of
their inputs, and XLA's SPMD partitioner splits each convolution by rows, exchanging the
one-row halo a 3×3 convolution needs with the neighbouring device, and turns sums over the
image (Gram matrices, statistics, losses, the optimiser's dot products) into an all-reduce.

Use it when one image is too big for one device; for many settings of one image use
:func:`nstjax.sweep`, which splits the settings instead (no halos, no reductions).
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from nstjax.model.layers import VGGWeights
from nstjax.objective.config import LossWeights, Objective
from nstjax.run.hooks import Callbacks
from nstjax.run.transfer import TransferResult, as_image_list, stylize
from nstjax.solve.solver import Solver

AXIS = "rows"


def spatial_mesh(devices: Sequence | None = None) -> Mesh:
    """A one-axis mesh (axis ``"rows"``) over ``devices`` (default: all local devices)."""
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("no devices to shard over")
    return Mesh(np.asarray(devices), (AXIS,))


def shard_rows(image, mesh: Mesh) -> jax.Array:
    """``f32[H, W, C]`` placed with its rows split over ``mesh`` (uneven splits are padded
    by XLA)."""
    return jax.device_put(image, NamedSharding(mesh, P(AXIS, None, None)))


def replicate(tree, mesh: Mesh):
    """A pytree with every array copied to every device of ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def stylize_sharded(vgg: VGGWeights, content, style, *, key, objective: Objective = Objective(),
                    weights: LossWeights | None = None, solver: Solver = Solver(),
                    init="content", callbacks: Callbacks | None = None,
                    mesh: Mesh | None = None) -> TransferResult:
    """:func:`nstjax.stylize` with the image's rows split over the devices of ``mesh``.

    Args:
      vgg, content, style, key, objective, weights, solver, init, callbacks: as
        :func:`nstjax.stylize` (``init`` may be an image, split the same way).
      mesh: a one-axis mesh (default :func:`spatial_mesh` over all local devices).

    Returns:
      A :class:`~nstjax.run.transfer.TransferResult` whose image stays split over the mesh
      (``np.asarray`` gathers it).
    """
    mesh = mesh or spatial_mesh()
    content = shard_rows(np.asarray(content, np.float32), mesh)
    styles = [replicate(s, mesh) for s in as_image_list(style)]
    if not isinstance(init, str):
        init = shard_rows(np.asarray(init, np.float32), mesh)
    return stylize(replicate(vgg, mesh), content, styles, key=replicate(key, mesh),
                   objective=objective,
                   weights=None if weights is None else replicate(weights, mesh),
                   solver=solver, init=init, callbacks=callbacks)
