"""Where the tiles of a print-size image lie, and how they are feathered together.

Pure geometry, no network: equal windows (one compiled program serves them all), each
holding a *core* that the tile writes (the window less a context margin on each side);
cores overlap and are blended with linear ramps normalised to a partition of unity
(:func:`core_weights`).  Used by :mod:`nstjax.large.tiling`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

# Every pooling halves the feature maps four times before relu5_1: tiles and their offsets
# are multiples of this, so a tile's features line up with the full image's.
ALIGN = 16


def tile_starts(length: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Starts of equal tiles of ``tile`` pixels covering ``[0, length)``, neighbours
    overlapping by at least ``overlap`` (the last ends at ``length``; starts are multiples
    of :data:`ALIGN` except possibly the last)."""
    if tile >= length:
        return (0,)
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, tile), got {overlap} for tile {tile}")
    n = math.ceil((length - overlap) / (tile - overlap))
    n = max(n, 2)
    starts = [int(round(i * (length - tile) / (n - 1) / ALIGN)) * ALIGN for i in range(n - 1)]
    return tuple(starts) + (length - tile,)


def blend_weights(start: int, size: int, length: int, overlap: int) -> np.ndarray:
    """1-D feathering weights of one tile: a linear ramp over ``overlap`` pixels at each
    edge that lies inside the image, 1 elsewhere (``f32[size]``, all > 0)."""
    w = np.ones(size, np.float32)
    if overlap <= 0:
        return w
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    if start > 0:
        w[:overlap] = np.minimum(w[:overlap], ramp)
    if start + size < length:
        w[size - overlap:] = np.minimum(w[size - overlap:], ramp[::-1])
    return w


class TileLayout(NamedTuple):
    """Where the tiles lie: cores (what each tile writes) inside windows (what it solves).

    Attributes:
      window: ``(wh, ww)`` the solved window of every tile (one compiled program).
      core: ``(ch, cw)`` the written core of every tile.
      cores: ``((y0, x0), ...)`` the cores' top-left corners in the image.
      windows: ``((y0, x0), ...)`` the windows' top-left corners (each holds its core).
    """

    window: tuple
    core: tuple
    cores: tuple
    windows: tuple


def tile_layout(shape: tuple[int, int], tile: int, overlap: int, margin: int) -> TileLayout:
    """Lay out equal windows of ``tile`` pixels whose cores (the window less ``margin`` of
    context on each side) cover the image, neighbouring cores overlapping by ``overlap``.

    Along an axis the image fits in one window, the core is the whole axis.
    """
    def axis(length):
        if length <= tile:
            return length, length, (0,), (0,)
        core = tile - 2 * margin
        if core <= overlap:
            raise ValueError(f"tile {tile} leaves a core of {core} pixels after a context "
                             f"margin of {margin} on each side, not above the overlap "
                             f"{overlap}: use a bigger tile or a smaller margin or overlap")
        starts = tile_starts(length, core, overlap)
        windows = tuple(min(max(s - margin, 0), length - tile) for s in starts)
        return tile, core, starts, windows

    wh, ch, ys, wys = axis(shape[0])
    ww, cw, xs, wxs = axis(shape[1])
    return TileLayout(window=(wh, ww), core=(ch, cw),
                      cores=tuple((y, x) for y in ys for x in xs),
                      windows=tuple((y, x) for y in wys for x in wxs))


def _feather(layout: TileLayout, i: int, shape: tuple[int, int], overlap: int):
    (ch, cw), (y0, x0) = layout.core, layout.cores[i]
    return (blend_weights(y0, ch, shape[0], overlap)[:, None]
            * blend_weights(x0, cw, shape[1], overlap)[None, :])


def core_weights(layout: TileLayout, i: int, shape: tuple[int, int], overlap: int, *,
                 coverage: np.ndarray | None = None):
    """``(f32[ch, cw] blend weights of core i, f32[wh, ww] the same placed in its window)``.

    A core's feathering (:func:`blend_weights` along each axis) divided by the sum of all
    cores' feathering at each pixel: over the tiles, every pixel's weights sum to exactly 1
    (a partition of unity), so the blend is the weighted sum of the tiles and the tiles'
    weighted losses add up to the whole image's.  The window map is 0 over the margin.

    Args:
      coverage: ``f32[H, W]`` the sum of all cores' feathering (:func:`coverage_of`),
        computed once; made here when None.
    """
    (ch, cw), (wh, ww) = layout.core, layout.window
    (y0, x0), (wy, wx) = layout.cores[i], layout.windows[i]
    if coverage is None:
        coverage = coverage_of(layout, shape, overlap)
    core = _feather(layout, i, shape, overlap) / coverage[y0:y0 + ch, x0:x0 + cw]
    window = np.zeros((wh, ww), np.float32)
    window[y0 - wy:y0 - wy + ch, x0 - wx:x0 - wx + cw] = core
    return core, window


def coverage_of(layout: TileLayout, shape: tuple[int, int], overlap: int) -> np.ndarray:
    """``f32[H, W]``: the sum of every core's feathering at each pixel (all > 0)."""
    total = np.zeros(shape, np.float32)
    (ch, cw) = layout.core
    for i, (y0, x0) in enumerate(layout.cores):
        total[y0:y0 + ch, x0:x0 + cw] += _feather(layout, i, shape, overlap)
    return total


def neighbours(layout: TileLayout, i: int) -> list[int]:
    """Tile ``i`` and the tiles whose cores share a side with its core (overlapping it
    along half an edge or more): the blend changes their pixels when ``i`` is solved.
    Diagonal neighbours share only an overlap corner and are left out."""
    (ch, cw) = layout.core
    y0, x0 = layout.cores[i]
    out = []
    for j, (y, x) in enumerate(layout.cores):
        dy = min(y0, y) + ch - max(y0, y)
        dx = min(x0, x) + cw - max(x0, x)
        if dy > 0 and dx > 0 and (dy >= ch / 2 or dx >= cw / 2):
            out.append(j)
    return out
