"""The registry of style representations: one name, one target function, one loss.

A style method is a pair of pure functions of one image's features ``F: f32[H, W, C]``:

* ``target(F_style) -> T``: what the style image contributes, computed once per run;
* ``loss(F, T, hyper, key) -> f32[]``: the discrepancy, with ``hyper`` a dict of traced
  hyper-parameters (sweepable) and ``key`` a PRNG key for the methods that sample.

The CLI (``--style-loss bn:0.5,mmd-poly:0.5``), the Python API, sweeps and the inversion
tool all pick methods here; a new method is one function pair plus one line in
``_BUILTIN``.

Built-in methods (hyper-parameters in brackets, all traced):

* ``gram``, ``gram-gamma``, ``gram-hw``, ``gram-chw``: Gram matrices (nstjax.losses);
* ``mmd-linear``, ``mmd-poly`` [c], ``mmd-gauss`` [sigma2; ≤ 0 means the data's mean squared
  distance]: MMD² of seed 003 eq. 10 (nstjax.mmd);
* ``bn`` (seed 003 eq. 11), ``moments`` [w1..w4] (seed 002 eq. 1.4, N = 4),
  ``channel-mmd`` [sigma2] (seed 002 eq. 1.6): nstjax.statistics;
* dislocators of seed 000 §3.5: ``mean``, ``mean-sq``, ``mean-abs`` (scaled sums),
  ``stats`` [mean, std, skew, kurt weights] and ``stats-mean``, ``stats-std``,
  ``stats-skew``, ``stats-kurt`` (one statistic alone).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from nstjax import losses, mmd, statistics


class StyleLoss(NamedTuple):
    """A registered style representation.

    Attributes:
      name: registry name (``"gram"``, ``"mmd-poly"``, ...).
      target: ``F_style -> T`` (a pytree), computed once per run.
      loss: ``(F, T, hyper, key) -> f32[]``.
      hyper: default hyper-parameters (floats; passed traced, so sweepable).
      scale: default ``λ`` making this loss's gradient comparable to the content loss's
        (seed 003 §4); the balance factor ``γ`` (style weight) multiplies it.
      uses_key: the loss samples (needs a distinct ``key`` per layer).
      permutation_invariant: the value ignores where features are (seed 003 §3.1).
      reference: seed and equation.
    """

    name: str
    target: Callable
    loss: Callable
    hyper: dict
    scale: float
    uses_key: bool = False
    permutation_invariant: bool = True
    reference: str = ""


def _gram_method(loss_fn):
    return lambda f, t, hyper, key: loss_fn(f, t)


def _with_defaults(loss_fn, defaults):
    """``loss_fn(f, t, hyper, key)`` seeing the registered defaults under missing keys."""
    return lambda f, t, hyper, key: loss_fn(f, t, {**defaults, **hyper}, key)


# The MMD losses of seed 003 eq. 10 divide MMD² by a normaliser Z_k^l of the layer and
# kernel, which the paper leaves open.  Ours: linear Z = N (a mean over channels of the
# squared mean difference); poly Z = 4N², so that "mmd-poly" with c = 0 *is* "gram" when the
# two images have the same size (seed 003 eq. 9) and the layers balance as in Gatys; Gaussian
# Z = 1 (the kernel is bounded, MMD² ∈ [−2, 4]).

def _mmd_linear(f, t, hyper, key):
    n, _ = losses.sizes(f)
    return mmd.mmd_linear(f, t) / n


def _mmd_poly(f, t, hyper, key):
    n, _ = losses.sizes(f)
    return mmd.mmd_poly(f, t, c=hyper["c"]) / (4.0 * n * n)


def _mmd_gauss(f, t, hyper, key):
    return mmd.mmd_gaussian(f, t, key, sigma2=hyper["sigma2"])


def _moments(f, t, hyper, key):
    w = jnp.stack([jnp.asarray(hyper[f"w{i}"]) for i in range(1, t.moments.shape[0] + 1)])
    return statistics.moment_loss(f, t, w)


def _channel_mmd(f, t, hyper, key):
    return statistics.channel_mmd_loss(f, t, sigma2=hyper["sigma2"])


def _dislocator(fn):
    return lambda f, t, hyper, key: statistics.dislocator_loss(fn(f), t)


def _stats(f, t, hyper, key):
    w = jnp.stack([jnp.asarray(hyper[s]) for s in statistics.STATISTICS])
    return statistics.statistics_loss(f, t, w)


def _one_statistic(name):
    w = tuple(float(s == name) for s in statistics.STATISTICS)
    return lambda f, t, hyper, key: statistics.statistics_loss(f, t, jnp.asarray(w))


def _identity(f):
    return f


def _method(name, target, loss, hyper, scale, **kw):
    return StyleLoss(name, target, _with_defaults(loss, hyper), hyper, scale, **kw)


_MOMENT_W = {f"w{i}": 1.0 for i in range(1, statistics.MAX_MOMENT + 1)}
_STATS_W = {s: 1.0 for s in statistics.STATISTICS}

# Default scales λ, measured by scripts/measure_style_scales.py on the real VGG19 weights
# (tubingen.jpg content, starry_night.jpg style, both at long edge 256; style layers
# relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 with weight 1 each; content
# content_loss(kind="sum") at relu4_2 with weight 1).  At the paper's random initialisation
# (uniform noise in [0, 1], seed 0), λ = ‖∇_x L_content‖ / ‖∇_x Σ_l L_style^l‖ (L2 norms of the
# gradients with respect to the RGB image), rounded to 2 significant digits, so that
# γ = 1 puts the style and content gradients on the same order (seed 003 §4).  Starting
# from the content image plus N(0, 0.1²) noise instead gives λ between 0.8× (channel-mmd)
# and 4.6× (stats) these (the script prints both); the sampled methods used key 0.
_BUILTIN = [
    StyleLoss("gram", losses.gram_matrix, _gram_method(losses.gram_loss), {}, 0.3,
              reference="seed 001 eq. 2-4 (1/(4N²M²))"),
    StyleLoss("gram-gamma", losses.gram_matrix, _gram_method(losses.gram_loss_gamma), {}, 0.075,
              reference="seed 002 eq. 1.2-1.3 (γ = 1/(c²w²h²))"),
    StyleLoss("gram-hw", losses.gram_matrix, _gram_method(losses.gram_loss_hw), {}, 2.9e-7,
              reference="Gram / HW, summed squared error"),
    StyleLoss("gram-chw", losses.gram_matrix, _gram_method(losses.gram_loss_chw), {}, 1.9e4,
              reference="Gram / CHW, mean squared error"),
    _method("mmd-linear", mmd.linear_target, _mmd_linear, {}, 1.6e5,
            reference="seed 003 eq. 10, linear kernel, Z = N"),
    _method("mmd-poly", mmd.poly_target, _mmd_poly, {"c": 1.0}, 0.32,
            reference="seed 003 eq. 9-10, (xᵀy + c)², Z = 4N²"),
    _method("mmd-gauss", _identity, _mmd_gauss, {"sigma2": 0.0}, 1.5e11, uses_key=True,
            permutation_invariant=False,
            reference="seed 003 eq. 10 + §4, Gaussian kernel, linear-time estimator, Z = 1"),
    _method("bn", statistics.bn_target, lambda f, t, h, k: statistics.bn_statistics_loss(f, t),
            {}, 9.6e4, reference="seed 003 eq. 11-12"),
    _method("moments", statistics.moment_target, _moments, _MOMENT_W, 1.4e-4,
            reference="seed 002 eq. 1.4-1.5, N = 4, weights w1..w4"),
    _method("channel-mmd", _identity, _channel_mmd, {"sigma2": 0.0}, 3.5e8,
            permutation_invariant=False, reference="seed 002 eq. 1.6 (mean over pairs)"),
    _method("mean", statistics.scaled_sum, _dislocator(statistics.scaled_sum), {}, 3.3e10,
            reference="seed 000 §3.5 dislocator 1 (scaled sum)"),
    _method("mean-sq", statistics.scaled_sum_squares,
            _dislocator(statistics.scaled_sum_squares), {}, 3.8e3,
            reference="seed 000 §3.5 dislocator 2 (scaled sum of squares)"),
    _method("mean-abs", statistics.scaled_sum_abs, _dislocator(statistics.scaled_sum_abs), {},
            3.3e10, reference="seed 000 §3.5 dislocator 3 (scaled sum of |F|)"),
    _method("stats", statistics.sample_statistics, _stats, _STATS_W, 650.0,
            reference="seed 000 §3.5 sample mean, std, skewness, kurtosis"),
    *[_method(f"stats-{s}", statistics.sample_statistics, _one_statistic(s), {}, scale,
              reference=f"seed 000 §3.5 sample {s} alone")
      for s, scale in zip(statistics.STATISTICS, (1.6e5, 1.7e5, 1.1e7, 650.0))],
]

STYLE_LOSSES: dict[str, StyleLoss] = {m.name: m for m in _BUILTIN}


def register_style_loss(method: StyleLoss, *, overwrite: bool = False) -> StyleLoss:
    """Add a style method to the registry (for user extensions)."""
    if method.name in STYLE_LOSSES and not overwrite:
        raise ValueError(f"style loss {method.name!r} is already registered")
    STYLE_LOSSES[method.name] = method
    return method


def get_style_loss(name: str) -> StyleLoss:
    """Look a style method up by name; an unknown name lists the valid ones."""
    try:
        return STYLE_LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown style loss {name!r}; choose from "
                         f"{', '.join(sorted(STYLE_LOSSES))}") from None


def parse_style_spec(spec) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Parse ``"bn:0.5,mmd-poly:0.5"`` (or ``"gram"``) into names and mix weights.

    Also accepts a sequence of names or of ``(name, weight)`` pairs.
    """
    if isinstance(spec, str):
        items = [s.strip() for s in spec.split(",") if s.strip()]
        parsed = []
        for item in items:
            name, _, w = item.partition(":")
            try:
                weight = float(w) if w else 1.0
            except ValueError:
                raise ValueError(f"bad weight {w!r} for style loss {name!r}") from None
            parsed.append((name.strip(), weight))
    else:
        parsed = [(s, 1.0) if isinstance(s, str) else (s[0], float(s[1])) for s in spec]
    if not parsed:
        raise ValueError("no style loss given")
    for name, weight in parsed:
        get_style_loss(name)
        if not (weight >= 0.0) or weight == float("inf"):
            raise ValueError(f"weight of style loss {name!r} must be finite and >= 0, got {weight}")
    names = tuple(n for n, _ in parsed)
    if len(set(names)) != len(names):
        raise ValueError(f"style loss named twice in {spec!r}")
    return names, tuple(w for _, w in parsed)


def style_targets(names, features: dict) -> dict:
    """Targets of each method on each layer: ``{method: {layer: T}}`` (computed once)."""
    return {n: {l: get_style_loss(n).target(f) for l, f in features.items()} for n in names}


def style_loss_terms(names, features: dict, targets: dict, layer_weights, hyper: dict, key):
    """Per-method style losses ``Σ_l w_l L_m(F_l, T_l)`` (seed 001 eq. 4, seed 003 eq. 5).

    Args:
      names: method names (static).
      features: ``{layer: F}`` of the image being optimised, layers in a fixed order.
      targets: from :func:`style_targets`.
      layer_weights: ``f32[L]`` in the order of ``features``.
      hyper: ``{method: {param: value}}`` (traced).
      key: PRNG key, split per method and layer for the methods that sample.

    Returns:
      ``f32[len(names)]``: one unscaled, unmixed loss per method.
    """
    layers = list(features)
    out = []
    for i, name in enumerate(names):
        method = get_style_loss(name)
        keys = jax.random.split(jax.random.fold_in(key, i), len(layers))
        total = 0.0
        for j, layer in enumerate(layers):
            total = total + layer_weights[j] * method.loss(
                features[layer], targets[name][layer], hyper.get(name, {}), keys[j])
        out.append(total)
    return jnp.stack(out)


def default_hyper(names) -> dict:
    """Default hyper-parameters of the named methods, as float32 arrays (traceable)."""
    return {n: {k: jnp.asarray(v, jnp.float32) for k, v in get_style_loss(n).hyper.items()}
            for n in names}
