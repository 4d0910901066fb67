"""Style representations, registered by name: Gram, MMD, BN statistics, moments, dislocators,
and distribution distances (sliced Wasserstein, Gaussian W2, histograms, CMD).

A style method is a pair of pure functions of one image's features ``F: f32[H, W, C]``:

* ``target(F_style) -> T``: what the style image contributes, computed once per run;
* ``loss(F, T, *, hyper, key, mask) -> f32[]``: the discrepancy.  ``hyper`` is a dict of
  traced hyper-parameters (sweepable), ``key`` a PRNG key for the methods that sample, and
  ``mask`` an optional ``f32[H, W]`` per-position weight map (``None``: every position
  counts once, the plain method) so that every statistic can be computed over weighted
  positions (guided Gram, guided MMD, guided BN, ...).

The command lines (``--style-loss bn:0.5,mmd-poly:0.5``), the Python API, sweeps and the
inversion tool all pick methods here.  A new method is one function with the
:func:`register_style_loss` decorator on it, in its family's module (each family imports
only :mod:`~nstjax.losses.core`, :mod:`~nstjax.losses.feature_stats` and
:mod:`~nstjax.losses.registry`); every registered method is also reachable here by its
name, e.g. ``nstjax.losses.gram``, a callable :class:`StyleLoss`: ``gram(features, gram.target(style_features))``.

Registered in :mod:`nstjax.losses.gram`: ``gram``, ``gram-gamma``, ``gram-hw``,
``gram-chw``; in :mod:`nstjax.losses.mmd`: ``mmd-linear``, ``mmd-poly``, ``mmd-gauss``; in
:mod:`nstjax.losses.statistics`: ``bn``, ``moments``, ``channel-mmd``, the dislocators
``mean``, ``mean-sq``, ``mean-abs``, ``stats`` and ``stats-{mean,std,skew,kurt}`` (their
scales: :mod:`nstjax.losses.builtin`).  In :mod:`nstjax.losses.distribution`:
``sliced-wasserstein`` (Heitz et al. 2021; samples directions, ``uses_key``),
``gaussian-w2`` (W2 between fitted Gaussians), ``histogram`` (Risser et al. 2017) and
``cmd`` (central moment discrepancy, Kalischek et al. 2021).  In :mod:`nstjax.losses.patches`:
``relaxed-emd`` (STROTSS, Kolkin et al. 2019; samples positions, ``uses_key``) and ``mrf``
(Li & Wand 2016, nearest 3×3 style patches).
"""

from nstjax.losses import builtin  # noqa: F401  (every family registers its methods)
from nstjax.losses.core import content_loss, gram_matrix, tv_loss
from nstjax.losses.distribution import cmd, histogram, sliced_wasserstein
from nstjax.losses.distribution import gaussian_w2_loss as gaussian_w2
from nstjax.losses.gram import gram, gram_chw, gram_gamma, gram_hw
from nstjax.losses.patches import mrf, relaxed_emd
from nstjax.losses.registry import (
    STYLE_LOSSES,
    StyleLoss,
    get_style_loss,
    parse_style_spec,
    register_style_loss,
    style_loss_names,
    style_loss_terms,
    style_targets,
)
from nstjax.losses.statistics import (
    bn,
    channel_mmd,
    mean,
    mean_abs,
    mean_sq,
    moments,
    stats,
    stats_kurt,
    stats_mean,
    stats_skew,
    stats_std,
)

mmd_linear, mmd_poly, mmd_gauss = (STYLE_LOSSES[n] for n in ("mmd-linear", "mmd-poly",
                                                             "mmd-gauss"))

# Every registered method is exported by its name (``-`` as ``_``): a StyleLoss, called as
# ``gram(features, gram.target(style_features))``.
__all__ = ["StyleLoss", "get_style_loss", "parse_style_spec", "register_style_loss",
           "style_loss_names", "style_loss_terms", "style_targets", "content_loss",
           "gram_matrix", "tv_loss",
           "bn", "channel_mmd", "cmd", "gaussian_w2", "gram", "gram_chw", "gram_gamma",
           "gram_hw", "histogram", "mean", "mean_abs", "mean_sq", "mmd_gauss", "mmd_linear",
           "mmd_poly", "moments", "mrf", "relaxed_emd", "sliced_wasserstein", "stats",
           "stats_kurt", "stats_mean", "stats_skew", "stats_std"]
