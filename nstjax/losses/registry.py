"""The registry of style methods: one name, one target function, one loss.

Methods register themselves where they are written, with the :func:`register_style_loss`
decorator (as big_vision's ``pp/registry.py``); a duplicate name is refused.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from nstjax.losses.core import sizes


class StyleLoss(NamedTuple):
    """A registered style representation.

    Attributes:
      name: registry name (``"gram"``, ``"mmd-poly"``, ...).
      target: ``F_style -> T`` (a pytree), computed once per run.
      loss: ``(F, T, *, hyper, key, mask) -> f32[]`` (package docstring).
      hyper: default hyper-parameters (floats; passed traced, so sweepable).
      scale: default ``λ`` making this loss's gradient comparable to the content loss's
        (li2017 §4); the balance factor ``γ`` (style weight) multiplies it.
      uses_key: the loss samples (needs a distinct ``key`` per layer).
      permutation_invariant: the value ignores where features are (li2017 §3.1).
      reference: seed and equation.
      paper_factor: ``(N, M) -> factor`` of one layer's loss under
        ``Objective(normalization="paper")`` (li2017's released code; ``None``: 1).
      paper_scale: default ``λ`` under that normalisation (``None``: :attr:`scale`).
      scale_source, paper_scale_source: how each ``λ`` was obtained (images, layers, the
        start image it was measured at, or the code it was taken from).
    """

    name: str
    target: Callable
    loss: Callable
    hyper: dict
    scale: float
    uses_key: bool = False
    permutation_invariant: bool = True
    reference: str = ""
    paper_factor: Callable | None = None
    paper_scale: float | None = None
    scale_source: str = ""
    paper_scale_source: str = ""

    def __call__(self, features, target, *, hyper=None, key=None, mask=None):
        """The method's loss of ``features`` against ``target`` (from :attr:`target`), with
        the default hyper-parameters for any not given; ``key`` is required when
        :attr:`uses_key`."""
        if self.uses_key and key is None:
            raise ValueError(f"style loss {self.name!r} samples: give key=")
        return self.loss(features, target, hyper=dict(hyper or {}), key=key, mask=mask)


STYLE_LOSSES: dict[str, StyleLoss] = {}

# How every built-in λ was obtained (li2017 §4): nstjax.losses.builtin's docstring.
MEASURED = ("‖∇_x L_content‖/‖∇_x L_style‖ at uniform noise in [0, 1] (seed 0), real VGG19, "
            "tubingen/starry_night at 256 px, relu1_1..relu5_1 weight 1, content relu4_2 "
            "(½Σ), key 0; benchmarks/style_scales.py")
PAPER = ("li2017's released code's constants (github.com/lyttonhao/Neural-Style-MMD), "
         "halved for our ½Σ content loss")


def register_style_loss(name: str, *, target: Callable, scale: float, hyper: dict | None = None,
                        uses_key: bool = False, permutation_invariant: bool = True,
                        reference: str = "", overwrite: bool = False,
                        paper_factor: Callable | None = None,
                        paper_scale: float | None = None, scale_source: str = "",
                        paper_scale_source: str = ""):
    """Decorator registering ``loss(F, T, *, hyper, key, mask)`` as the style method ``name``.

    Args:
      name: registry name, as the ``--style-loss`` flag spells it.
      target: ``F_style -> T``.
      scale: default ``λ`` (how it was measured goes in the registering module).
      hyper: default hyper-parameters; the loss sees them under any key a caller omits.
      uses_key, permutation_invariant, reference, paper_factor, paper_scale, scale_source,
        paper_scale_source: see :class:`StyleLoss`.
      overwrite: allow replacing a registered method (user extensions).

    Returns:
      The decorator; it returns the :class:`StyleLoss` it registered.
    """
    defaults = dict(hyper or {})

    def register(loss: Callable) -> StyleLoss:
        if name in STYLE_LOSSES and not overwrite:
            raise ValueError(f"style loss {name!r} is already registered")

        def with_defaults(features, target_value, *, hyper, key, mask=None):
            return loss(features, target_value, hyper={**defaults, **hyper}, key=key, mask=mask)

        method = StyleLoss(name, target, with_defaults, defaults, float(scale), uses_key,
                           permutation_invariant, reference, paper_factor,
                           None if paper_scale is None else float(paper_scale), scale_source,
                           paper_scale_source if paper_scale is not None else "")
        STYLE_LOSSES[name] = method
        return method

    return register


def style_loss_names() -> tuple[str, ...]:
    """The registered style methods' names, in registration order."""
    return tuple(STYLE_LOSSES)


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


def style_loss_terms(names, features: dict, targets: dict, layer_weights, hyper: dict, key, *,
                     masks: dict | None = None, normalization: str = "nstjax"):
    """Per-method style losses ``Σ_l w_l L_m(F_l, T_l)`` (mathur2017 eq. 4, li2017 eq. 5).

    Args:
      names: method names (static).
      features: ``{layer: F}`` of the image being optimised, layers in a fixed order.
      targets: from :func:`style_targets`.
      layer_weights: ``f32[L]`` in the order of ``features``.
      hyper: ``{method: {param: value}}`` (traced).
      key: PRNG key, split per method and layer for the methods that sample.
      masks: optional ``{layer: f32[h, w]}`` position weights (``None``: uniform).
      normalization: ``"nstjax"`` or ``"paper"``: each layer's loss times the method's
        ``paper_factor(N, M)`` (:class:`StyleLoss`), li2017's released code.

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
            mask = None if masks is None else masks[layer]
            value = method.loss(features[layer], targets[name][layer],
                                hyper=hyper.get(name, {}), key=keys[j], mask=mask)
            if normalization == "paper" and method.paper_factor is not None:
                value = value * method.paper_factor(*sizes(features[layer], mask=mask))
            total = total + layer_weights[j] * value
        out.append(total)
    return jnp.stack(out)


def register_builtin(name: str, **kw):
    """:func:`register_style_loss` for the package's own methods: their λ measured as
    :data:`MEASURED` says (li2017's code's, :data:`PAPER`, under paper normalisation)."""
    kw.setdefault("scale_source", MEASURED)
    kw.setdefault("paper_scale_source", PAPER)
    return register_style_loss(name, **kw)
