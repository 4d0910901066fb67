"""The image as a Laplacian pyramid: what STROTSS and NNST optimise instead of pixels.

Kolkin et al. 2019 (STROTSS, ``pyr_lap.py``) and Kolkin et al. 2022 (NNST,
``utils/imagePyramid.py``) update the coefficients of a Laplacian pyramid (Burt & Adelson
1983) of the output, not its pixels: a coarse coefficient moves a whole block of pixels, so a
gradient step changes the layout's colours broadly and leaves less single-pixel speckle.  The
pyramid is theirs: level ``i`` is ``g_i − up(g_{i+1})`` with ``g_0 = x`` and
``g_{i+1} = down(g_i)`` (bilinear resizes to ``max(⌊h/2⌋, 1) × max(⌊w/2⌋, 1)``, no
antialiasing, as ``F.interpolate(mode="bilinear")``), and the last level is the coarsest
``g_L``; :func:`synthesize` adds the levels back, so ``synthesize(decompose(x)) == x`` up to
rounding for any resize.

An optimiser of this project takes one array, so the levels travel packed in one
:func:`pack` mosaic of shape ``[H + ⌊H/2⌋, W, C]`` (the finest level on top, the coarser ones
side by side below it, zeros elsewhere; the zeros get no gradient and stay zero), from whose
shape :func:`unpack` reads ``H`` and ``W`` back: every optimiser, ``vmap`` over sweep
members and the chunked driver run on it unchanged.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

PARAMETRIZATIONS = ("pixels", "laplacian")
DEFAULT_LEVELS = 5            # STROTSS's ``dec_lap_pyr(stylized_im, 5)``; NNST uses 8


def check_parametrization(name: str) -> str:
    """``name`` if it is one of :data:`PARAMETRIZATIONS`; otherwise a ``ValueError`` naming
    the valid ones."""
    if name not in PARAMETRIZATIONS:
        raise ValueError(f"unknown parametrization {name!r}; choose from "
                         f"{', '.join(PARAMETRIZATIONS)}")
    return name


def level_count(height: int, width: int, levels: int) -> int:
    """How many halvings of ``levels`` an ``height × width`` image takes: at most until its
    short side is one pixel (STROTSS clamps each side at 1, which past that point only
    repeats the same 1-pixel level)."""
    return max(0, min(int(levels), int(math.floor(math.log2(max(1, min(height, width)))))))


def level_shapes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """``(h, w)`` of each of the ``level_count + 1`` levels, finest first."""
    shapes = [(height, width)]
    for _ in range(level_count(height, width, levels)):
        h, w = shapes[-1]
        shapes.append((max(h // 2, 1), max(w // 2, 1)))
    return shapes


def _resize(x, hw):
    return jax.image.resize(x, tuple(hw) + x.shape[2:], "linear", antialias=False)


def decompose(x, levels: int = DEFAULT_LEVELS) -> list:
    """The Laplacian pyramid of ``f32[H, W, C]`` ``x``: detail levels finest first, then the
    coarsest approximation (``level_count + 1`` arrays)."""
    shapes = level_shapes(x.shape[0], x.shape[1], levels)
    pyramid, current = [], x
    for hw in shapes[1:]:
        small = _resize(current, hw)
        pyramid.append(current - _resize(small, current.shape[:2]))
        current = small
    pyramid.append(current)
    return pyramid


def synthesize(pyramid) -> jax.Array:
    """The image whose pyramid is ``pyramid`` (:func:`decompose`'s inverse)."""
    current = pyramid[-1]
    for detail in pyramid[-2::-1]:
        current = detail + _resize(current, detail.shape[:2])
    return current


def pack(pyramid) -> jax.Array:
    """The levels of ``pyramid`` in one ``[H + ⌊H/2⌋, W, C]`` mosaic (module docstring)."""
    top = pyramid[0]
    height, width, channels = top.shape
    strip = jnp.zeros((height // 2, width, channels), top.dtype)
    col = 0
    for level in pyramid[1:]:
        h, w = level.shape[:2]
        strip = jax.lax.dynamic_update_slice(strip, level, (0, col, 0))
        col += w
    return jnp.concatenate([top, strip], axis=0)


def image_shape(mosaic_shape) -> tuple[int, int]:
    """``(H, W)`` of the image a mosaic of ``mosaic_shape`` packs."""
    rows, width = mosaic_shape[0], mosaic_shape[1]
    return rows - rows // 3, width


def unpack(mosaic, levels: int = DEFAULT_LEVELS) -> list:
    """The levels of a :func:`pack` mosaic."""
    height, width = image_shape(mosaic.shape)
    shapes = level_shapes(height, width, levels)
    pyramid = [mosaic[:height]]
    col = 0
    for h, w in shapes[1:]:
        pyramid.append(mosaic[height:height + h, col:col + w])
        col += w
    return pyramid


def encode(x, levels: int = DEFAULT_LEVELS) -> jax.Array:
    """``x`` as the mosaic of its pyramid: the variable a ``"laplacian"`` solve updates."""
    return pack(decompose(x, levels))


def decode(mosaic, levels: int = DEFAULT_LEVELS) -> jax.Array:
    """The image a mosaic stands for (not clipped: the losses see it as STROTSS's do)."""
    return synthesize(unpack(mosaic, levels))


def to_variable(x, objective):
    """The array a solve updates for the image ``x``: ``x`` itself, or under
    ``objective.parametrization == "laplacian"`` its pyramid's mosaic
    (:func:`encode`)."""
    if objective.parametrization == "laplacian":
        return encode(x, objective.pyramid_levels)
    return x


def to_image(z, objective):
    """The image a solve's variable ``z`` stands for (:func:`to_variable`'s inverse); a
    pyramid's image is not clipped (the losses see it as STROTSS's do)."""
    if objective.parametrization == "laplacian":
        return decode(z, objective.pyramid_levels)
    return z


def to_picture(z, objective):
    """The picture of a solve's variable: :func:`to_image`, clipped to [0, 1] when the
    variable had no pixel box (a pyramid's)."""
    x = to_image(z, objective)
    return jnp.clip(x, 0.0, 1.0) if objective.parametrization == "laplacian" else x
