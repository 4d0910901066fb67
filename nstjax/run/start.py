"""Start images of a solve, the style images' checks and the objective's against the
optimiser's (what every driver checks and starts from)."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from nstjax.io.image_arrays import STYLE_MARGIN, check_image_array
from nstjax.objective.config import Objective
from nstjax.solve.optimize import optimizer_names, uses_line_search

INITS = ("content", "noise", "uniform", "style", "grey")
SWEEP_INITS = INITS        # the batched drivers' starts (initial_image of each member)
MAX_SEED = 2 ** 32 - 1     # JAX's PRNGKey keeps 32 bits without x64: larger seeds collide
# li2017's code starts from ``uniform(−0.1, 0.1)`` in mean-subtracted 0-255 units: the
# ImageNet mean pixel of its preprocessing, ±0.1/255 (``neural-style.py``, ``--init random``).
GREY_RGB = (123.68 / 255.0, 116.779 / 255.0, 103.939 / 255.0)
GREY_NOISE = 0.1 / 255.0
NOISE_STD = 8.0 / 255.0     # "noise": Gaussian, 8 levels of 255, around the mean colour

def initial_image(content, styles: Sequence, init: str, key):
    """``"content"``, ``"noise"`` (the content's mean colour plus Gaussian noise of
    :data:`NOISE_STD`, seeded, clipped to [0, 1]: a start without the photo's colours and
    without rainbow speckle, like jcjohnson/neural-style's ``randn × 0.001`` around the
    mean), ``"uniform"`` (uniform in [0, 1], seeded: stylerep's inversion start),
    ``"style"`` (first style, resized to the content's shape) or ``"grey"`` (li2017's
    code and jcjohnson/neural-style: the mean pixel :data:`GREY_RGB` plus uniform noise of
    ±:data:`GREY_NOISE`, seeded)."""
    if init == "content":
        return content
    if init == "noise":
        mean = jnp.mean(jnp.reshape(content, (-1, 3)), axis=0)
        return jnp.clip(mean + NOISE_STD * jax.random.normal(key, content.shape, jnp.float32),
                        0.0, 1.0)
    if init == "uniform":
        return jax.random.uniform(key, content.shape, jnp.float32)
    if init == "style":
        return jax.image.resize(styles[0], content.shape, "linear").clip(0.0, 1.0)
    if init == "grey":
        return jnp.asarray(GREY_RGB, jnp.float32) + jax.random.uniform(
            key, content.shape, jnp.float32, -GREY_NOISE, GREY_NOISE)
    raise ValueError(f"init must be one of {', '.join(INITS)} (or an image), not {init!r}")


def as_image_list(style) -> list:
    """One ``f32[H, W, 3]`` image or a sequence of them, as a list of float32 arrays, each
    checked (:func:`nstjax.io.image.check_image_array`)."""
    if style is None or isinstance(style, (str, bytes)):
        raise ValueError(f"style: give an RGB image array or a list of them, not {style!r}")
    if getattr(style, "ndim", 0) == 3:
        return [check_image_array(style, "style", margin=STYLE_MARGIN)]
    images = [check_image_array(s, f"style {k + 1}", margin=STYLE_MARGIN)
              for k, s in enumerate(style)]
    if not images:
        raise ValueError("no style image given")
    return images


def check_solver(objective: Objective, optimizer: str) -> None:
    """Refuse resampled pairs with an optimiser that needs a deterministic objective.

    An optimiser registered with ``line_search=True`` (:func:`nstjax.register_optimizer`:
    ``plbfgs``, ``lbfgsb``, ``lbfgs``, ``optax-lbfgs``) compares values and gradients at
    nearby points and builds curvature pairs from them; with pairs drawn anew at every
    evaluation these are different functions, so the search and the curvature estimate are
    noise.  Resampling is for the first-order ones (li2017's code uses SGD).

    Raises:
      ValueError: ``objective.resample`` with an optimiser that uses a line search, or an
        unknown optimiser.
    """
    if objective.resample and uses_line_search(optimizer):
        stochastic = [n for n in optimizer_names() if not uses_line_search(n)]
        raise ValueError(f"resampled Gaussian pairs need a stochastic optimiser "
                         f"({', '.join(stochastic[:-1])} or {stochastic[-1]}); {optimizer} "
                         "uses a line search, which needs the same function at every "
                         "evaluation")
