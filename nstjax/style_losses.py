"""The registry of style representations: one name, one target function, one loss.

A style method is a pair of pure functions of one image's features ``F: f32[H, W, C]``:

* ``target(F_style) -> T``: what the style image contributes, computed once per run;
* ``loss(F, T, hyper, key) -> f32[]``: the discrepancy, with ``hyper`` a dict of traced
  hyper-parameters (sweepable) and ``key`` a PRNG key for the methods that sample.

The CLI (``--style-loss bn:0.5,mmd-poly:0.5``), the Python API, sweeps and the inversion
tool all pick methods here; a new method is one function pair plus one line in
``_BUILTIN``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from nstjax import losses


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


_BUILTIN = [
    StyleLoss("gram", losses.gram_matrix, _gram_method(losses.gram_loss), {}, 1.0,
              reference="seed 001 eq. 2-4 (1/(4N²M²))"),
    StyleLoss("gram-gamma", losses.gram_matrix, _gram_method(losses.gram_loss_gamma), {}, 0.25,
              reference="seed 002 eq. 1.2-1.3 (γ = 1/(c²w²h²))"),
    StyleLoss("gram-hw", losses.gram_matrix, _gram_method(losses.gram_loss_hw), {}, 1.0,
              reference="Gram / HW, summed squared error"),
    StyleLoss("gram-chw", losses.gram_matrix, _gram_method(losses.gram_loss_chw), {}, 1.0,
              reference="Gram / CHW, mean squared error"),
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
