"""The plans beyond one program, as values for :func:`nstjax.stylize`'s ``plan``:
:class:`Tiles` (any size, the memory of one window) and :class:`Sharded` (the rows over
devices).  What they take is :data:`nstjax.run.plans.SUPPORTS`' rows ``"Tiles"`` and
``"Sharded"``; colour control is applied around them by :func:`nstjax.run.plans.stylize`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from nstjax.large.sharding import stylize_sharded
from nstjax.large.tiling import stylize_tiled
from nstjax.run.result import TransferResult
from nstjax.solve.solver import Solver


class Tiles(NamedTuple):
    """A coarse global solve, then overlapping ``tile × tile`` windows, each writing its
    core (:func:`nstjax.large.tiling.stylize_tiled`, whose arguments these are)."""

    tile: int = 512
    overlap: int = 32
    margin: int = 64
    coarse: int | None = None
    coarse_solver: Solver | None = None
    weights_at: int | None = None
    match: str = "local"
    log: Callable[[str], None] | None = None

    name = "Tiles"

    def solve(self, vgg, content, styles, **kw) -> TransferResult:
        return stylize_tiled(vgg, content, styles, tile=self.tile, overlap=self.overlap,
                             margin=self.margin, coarse=self.coarse,
                             coarse_solver=self.coarse_solver, weights_at=self.weights_at,
                             match=self.match, log=self.log, **kw)


class Sharded(NamedTuple):
    """:func:`nstjax.large.sharding.stylize_sharded`: the image's rows split over the
    devices of ``mesh`` (default: every local device)."""

    mesh: Any = None

    name = "Sharded"

    def solve(self, vgg, content, styles, **kw) -> TransferResult:
        return stylize_sharded(vgg, content, styles, mesh=self.mesh, **kw)
