"""Image arrays handed to the library: the checks every entry point makes where it is
entered (``stylize``, ``sweep``, ``invert``, ``compute_targets``, ``score``), so a wrong
array is one ``ValueError`` naming the argument, not an error from deep in JAX, a NaN
picture or a loss 10⁴ times too large.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.io.image import MIN_SIZE

STYLE_MARGIN = 0.25   # a style array a little outside [0, 1] (an unclipped recolouring)


def check_image_array(image, name: str, *, margin: float = 1e-6):
    """``image`` as ``f32[H, W, 3]`` after the checks a library entry point owes its caller:
    an RGB array of floating point pixels, finite, in [0, 1] (to ``margin``: style images
    take :data:`STYLE_MARGIN`) and at least :data:`MIN_SIZE` pixels on each side; the
    array itself when it already is a float32 JAX array (its placement on devices kept).
    Raises ``ValueError`` naming ``name``.  Inside ``jit`` (a tracer) only the shape is
    checked: the values are not known there."""
    if image is None:
        raise ValueError(f"{name}: no image given (None)")
    shape = tuple(getattr(image, "shape", np.shape(image)))
    if len(shape) != 3 or shape[-1] != 3:
        raise ValueError(f"{name} must be an H×W×3 RGB array, got shape {shape}")
    if min(shape[:2]) < MIN_SIZE:
        raise ValueError(f"{name}: {shape[1]}×{shape[0]} is below {MIN_SIZE} pixels on a side")
    if isinstance(image, jax.core.Tracer):
        return image
    a = np.asarray(image)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name}: {a.dtype} pixels; give floats in [0, 1] "
                         "(e.g. image / 255, or nstjax.load_image)")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: has NaN or infinite pixels")
    lo, hi = float(a.min()), float(a.max())
    if lo < -margin or hi > 1.0 + margin:
        raise ValueError(f"{name}: pixels from {lo:g} to {hi:g}; give values in [0, 1] "
                         "(e.g. image / 255)")
    if isinstance(image, jax.Array) and image.dtype == jnp.float32:
        return image
    return jnp.asarray(a, jnp.float32)
