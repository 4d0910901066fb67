"""Style representations, registered by name: Gram, MMD, BN statistics, moments, dislocators.

A style method is a pair of pure functions of one image's features ``F: f32[H, W, C]``:

* ``target(F_style) -> T``: what the style image contributes, computed once per run;
* ``loss(F, T, *, hyper, key, mask) -> f32[]``: the discrepancy.  ``hyper`` is a dict of
  traced hyper-parameters (sweepable), ``key`` a PRNG key for the methods that sample, and
  ``mask`` an optional ``f32[H, W]`` per-position weight map (``None``: every position
  counts once, the plain method) so that every statistic can be computed over weighted
  positions (guided Gram, guided MMD, guided BN, ...).

The command lines (``--style-loss bn:0.5,mmd-poly:0.5``), the Python API, sweeps and the
inversion tool all pick methods here.  A new method is one function with the
:func:`register_style_loss` decorator on it (see :mod:`nstjax.losses.builtin`).
"""

from nstjax.losses.registry import (STYLE_LOSSES, StyleLoss, get_style_loss,
                                          parse_style_spec, register_style_loss,
                                          style_loss_terms, style_targets)
from nstjax.losses import builtin  # noqa: F401  (registers the built-in methods)

__all__ = ["STYLE_LOSSES", "StyleLoss", "get_style_loss", "parse_style_spec",
           "register_style_loss", "style_loss_terms", "style_targets"]
