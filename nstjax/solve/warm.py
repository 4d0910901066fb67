"""Warm starts across sizes: an optimiser's moment estimates carried to a resized image.

Coarse-to-fine runs restart the optimiser at every size.  Adam's state is two images, the
moving averages of the gradient (``mu``) and of its square (``nu``), and can follow the
iterate to the next size: crowsonkb/style-transfer-pytorch resizes them (``scale_adam``:
``mu`` bicubic, ``nu`` bilinear and clipped at 0, the step count kept), so the first steps
at the new size are as well scaled as the last ones at the old size instead of Adam's
cautious bias-corrected start.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from optax import tree_utils

MOMENT_OPTIMIZERS = ("adam",)


def carry_moments(fresh: Any, previous: Any) -> Any:
    """``fresh`` (an optimiser state at the new size) with ``previous``'s first and second
    moments resized to it and its step count; raises ``ValueError`` for a state without
    Adam's moments."""
    mu, nu = tree_utils.tree_get(previous, "mu"), tree_utils.tree_get(previous, "nu")
    target = tree_utils.tree_get(fresh, "mu")
    if mu is None or nu is None or target is None:
        raise ValueError(f"carrying moments needs an optimiser with Adam's moments "
                         f"({', '.join(MOMENT_OPTIMIZERS)})")
    shape = target.shape
    return tree_utils.tree_set(
        fresh, mu=jax.image.resize(mu, shape, "cubic"),
        nu=jnp.maximum(jax.image.resize(nu, shape, "linear"), 0.0),
        count=tree_utils.tree_get(previous, "count"))
