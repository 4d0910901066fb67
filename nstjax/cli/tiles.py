"""``nstjax stylize --tile``: print sizes, solved in overlapping windows (:mod:`nstjax.large.tiling`).

``--tile 1024`` solves the image in 1024×1024 windows after a coarse whole-image solve at
1024 px; ``--tile auto`` tiles only when the whole image would not fit in memory, in the
largest window that fits.  Memory is that of one window, so any size runs.  Each tile
writes its core (the window less ``--tile-margin`` pixels of context on each side); cores
overlap by ``--tile-overlap`` pixels and are feathered together.  The style image follows
``--size`` as in an untiled run, so the strokes keep their scale (the largest size whose
features fit in memory when that is smaller; ``--style-size`` overrides it), and the loss
weights balance the terms as they would in a run at ``--size`` of the window (with Gatys'
summed content loss the style weight is scaled by the image's area over the window's; the
default per-position losses need no change).

Ctrl-C stops after the current iteration of the current tile; the image is written with
the tiles solved so far blended into the upsampled coarse solution (exit 130).  With
``--save-every`` the blend so far is written after every tile.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.cli import common, counts, memory_check, run_pictures
from nstjax.cli.common import UsageError
from nstjax.cli.session import plural
from nstjax.io.image_writing import output_unit, save_image
from nstjax.large import tiling
from nstjax.large.tile_layout import tile_layout
from nstjax.run import memory
from nstjax.run.start import INITS
from nstjax.solve.minimize import Status

MIN_TILE = 64
DEFAULT_OVERLAP = 32
DEFAULT_MARGIN = 64


def add_arguments(p) -> None:
    g = p.add_argument_group("print sizes: overlapping tiles (memory of one window)")
    g.add_argument("--tile", help="solve in overlapping windows of this many pixels, after a "
                   "coarse whole-image solve at that size; 'auto': only when the whole image "
                   "would not fit in memory, in the largest window that fits")
    g.add_argument("--tile-iters", type=counts.count, help="iterations of each tile (default "
                   "--iters, which is the coarse solve's)")
    g.add_argument("--tile-overlap", type=int, help=f"pixels over which neighbouring tiles "
                   f"are blended (default {DEFAULT_OVERLAP})")
    g.add_argument("--tile-match", choices=("local", "whole"), default="local",
                   help="local: every tile matches the style by itself, as strongly as an "
                   "untiled run (default); whole: each tile lowers the whole image's Gram "
                   "objective, the rest held (exact, but with few tile iterations the first "
                   "tiles take up all the style)")
    g.add_argument("--tile-margin", type=int, help="context pixels solved around each tile "
                   f"but not written (a multiple of 16; default {DEFAULT_MARGIN}, or an eighth "
                   "of a smaller tile)")


class Tiling(NamedTuple):
    """The tile flags, checked: ``tile`` is ``"auto"`` or the window's edge in pixels
    (``--tile``), ``margin`` ``None`` until an ``"auto"`` window is chosen."""

    tile: int | str
    overlap: int
    margin: int | None
    iters: int | None
    match: str


def parse(args) -> Tiling | None:
    """The tile flags, validated before any work (``None``: no ``--tile``)."""
    tile = args.tile
    if tile is None:
        for flag in ("tile_overlap", "tile_margin", "tile_iters"):
            if getattr(args, flag) is not None:
                raise UsageError(f"--{flag.replace('_', '-')} needs --tile")
        return None
    if getattr(args, "parametrization", None) == "laplacian":
        raise UsageError("--tile holds each window's margin fixed, which a laplacian "
                         "pyramid's coarse levels cannot: use --parametrization pixels")
    if str(tile).strip().lower() == "auto":
        tile = "auto"
    else:
        try:
            tile = int(tile)
        except ValueError:
            raise UsageError(f"--tile: a number of pixels or 'auto', not {tile!r}") from None
        if tile < MIN_TILE or tile % 16:
            raise UsageError(f"--tile {tile}: a multiple of 16 of at least {MIN_TILE} "
                             "pixels, please")
    overlap = DEFAULT_OVERLAP if args.tile_overlap is None else args.tile_overlap
    margin = args.tile_margin
    if margin is None:
        margin = default_margin(tile) if isinstance(tile, int) else None
    if overlap < 0 or (margin is not None and (margin < 0 or margin % 16)):
        raise UsageError("--tile-overlap must be >= 0 and --tile-margin a multiple of 16 "
                         f">= 0 (got {overlap} and {margin})")
    if isinstance(tile, int) and tile - 2 * margin <= overlap:
        raise UsageError(f"--tile {tile} leaves no room for tiles after a margin of "
                         f"{margin} on each side and an overlap of {overlap}")
    if args.tile_iters is not None and args.tile_iters < 1:
        raise UsageError(f"--tile-iters must be at least 1, not {args.tile_iters}")
    clash = [flag for flag, given in (
        ("--min-size", args.min_size is not None), ("--style-mask", bool(args.style_mask)),
        ("--content-mask", bool(args.content_mask)), ("--animation", bool(args.animation)))
        if given]
    if clash:
        raise UsageError(f"--tile does not combine with {', '.join(clash)} (the tiles have "
                         "their own coarse stage and no masks or animation yet)")
    if args.init is not None and args.init not in INITS:
        raise UsageError("--tile starts from 'content', 'noise', 'uniform', 'style' or 'grey', "
                         "not an --init image")
    return Tiling(tile, overlap, margin, args.tile_iters, args.tile_match)


def default_margin(tile: int) -> int:
    """:data:`DEFAULT_MARGIN`, or an eighth of a smaller tile (a multiple of 16)."""
    return min(DEFAULT_MARGIN, tile // 8 // 16 * 16)


def check_memory(args, tiled: Tiling | None, objective, size: int
                 ) -> tuple[memory_check.Fitted, Tiling | None]:
    """:func:`memory_check.check_memory` and the tiles to solve in (``None``: the whole
    image), resolving ``--tile auto``: no tiles when the whole image fits, else the
    largest window that fits (then the check again for it)."""
    if tiled is not None and isinstance(tiled.tile, int) and tiled.tile >= size:
        print(f"note: --tile {tiled.tile} is not smaller than the image ({size} px): "
              "solving it whole", file=sys.stderr)
        tiled = None
    if tiled is None or tiled.tile != "auto":
        tile = None if tiled is None else tiled.tile
        return memory_check.check_memory(args, objective, size, tile=tile), tiled
    tile, margin = None, tiled.margin
    available = memory_check.available_memory(args)     # one budget for every attempt
    for attempt in range(4):  # memory is not quite proportional to pixels: refine the size
        try:
            fitted = memory_check.check_memory(args, objective, size, available=available,
                                               tile=tile)
        except memory_check.TooBig as e:
            margin = default_margin(e.largest) if tiled.margin is None else tiled.margin
            if attempt == 3 or e.largest < max(MIN_TILE, 2 * margin + tiled.overlap + 16):
                raise
            tile = e.largest
            continue
        if tile:
            print(f"note: the whole image does not fit; solving it in {tile}-pixel "
                  "tiles", file=sys.stderr)
            return fitted, tiled._replace(tile=tile, margin=margin)
        return fitted, None


def run(tiled: Tiling, out, session, *, inputs, vgg, content, styles, alpha, objective,
        weights, solver, init, preserve_color, color_match, bit_depth: int, save_every: int,
        plan=None) -> int:
    """Solve in ``tiled``'s tiles, write the image and its sidecar; returns the exit
    code."""
    h, w = content.shape[:2]
    layout = tile_layout((h, w), tiled.tile, tiled.overlap, tiled.margin)
    n = len(layout.cores)
    tile_solver = solver if tiled.iters is None else dataclasses.replace(
        solver, max_iter=tiled.iters)
    session.start(solver.max_iter + n * tile_solver.max_iter, "stylize",
                  f"stylize: {w}×{h}, {solver.optimizer}: first the whole image at "
                  f"{min(tiled.tile, max(h, w))} px ({plural(solver.max_iter, 'iteration')}), "
                  f"then {n} tiles of {layout.window[1]}×{layout.window[0]} "
                  f"({plural(tile_solver.max_iter, 'iteration')} each, every tile matching "
                  f"the style {'on its own' if tiled.match == 'local' else 'of the whole'}"
                  "); the loss shown is the current stage's own")
    session.stage = "coarse"

    def snapshot(i, x):
        if save_every:
            session.save_snapshot(out.with_name(f"{out.stem}_{i:05d}{out.suffix}"), x,
                                  alpha=alpha)

    result = session.solve(lambda: tiling.stylize_tiled(
        vgg, jnp.asarray(content), [jnp.asarray(s) for s in styles],
        key=inputs.key(), objective=objective, weights=weights,
        solver=tile_solver, coarse_solver=solver, tile=tiled.tile, weights_at=tiled.tile,
        overlap=tiled.overlap, margin=tiled.margin, init=init,
        callbacks=session.callbacks(snapshot=snapshot),
        log=lambda text: setattr(session, "stage", text), preserve_color=preserve_color,
        color_match=color_match, match=tiled.match))
    with output_unit():        # the image and its sidecar: all or none
        save_image(out, np.asarray(result.image), protect=inputs.paths,
                   bit_depth=bit_depth, alpha=alpha)
        tiles = [s for s in result.stages if s.core]
        solved, coarse = len(tiles), [s for s in result.stages if not s.core]
        record = session.record(
            with_snapshots=True, output=str(out), **common.config_record(objective, solver),
            tile_solver=dataclasses.asdict(tile_solver), loss_weights=weights._asdict(),
            image_size=[int(w), int(h)], device=str(jax.devices()[0]),
            status=("interrupted" if int(result.status) == Status.INTERRUPTED
                    else "done"),
            tiles={"window": [int(layout.window[1]), int(layout.window[0])],
                   "core": [int(layout.core[1]), int(layout.core[0])],
                   "overlap": tiled.overlap, "margin": tiled.margin,
                   "count": n, "solved": solved, "weights_at": tiled.tile,
                   "coarse_size": ([int(coarse[0].result.image.shape[1]),
                                    int(coarse[0].result.image.shape[0])] if coarse else None),
                   "match": tiled.match,
                   "whole_image_gram": (tiled.match == "whole"
                                        and tiling.gram_objective(objective)),
                   "losses": [float(s.result.loss) for s in tiles]})
        record.update(run_pictures.write(out, result, run_pictures.Frames(),
                                         mask_kw={}, protect=inputs.paths,
                                         period=0))
        if plan is not None:          # a tile's plan, and the whole run's measured peak
            record["memory"] = plan.record(peak=memory.measured_peak_bytes())
        common.write_json(out.with_name(out.name + ".json"), record)
    return session.finish([out, out.with_name(out.name + ".json"), record.get("loss_curve")],
                          details=f"{w}×{h}, {solved}/{n} tiles")
