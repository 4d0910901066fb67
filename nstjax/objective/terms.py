"""The objective: targets computed once, then its weighted terms at an image (pure).

    L(x) = α Σ_l c_l L_content,l(x) + β Σ_s b_s Σ_m μ_m λ_m Σ_l w_l L_m,l(x; style s) + τ TV(x)

(mathur2017 eq. 5, li2017 eq. 3 and §4; the symbols are :class:`nstjax.LossWeights`'
fields, see :mod:`nstjax.objective.config`).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.io.image_arrays import STYLE_MARGIN, check_image_array
from nstjax.losses import core as losses
from nstjax.losses import get_style_loss, style_loss_terms, style_targets
from nstjax.losses.patches import palette_loss, palette_target
from nstjax.model.layers import VGGWeights, layer_stride
from nstjax.model.vgg import extract_features
from nstjax.objective import masks
from nstjax.objective.alpha import alpha_content_mask, alpha_style_masks
from nstjax.objective.config import LossWeights, Objective

PALETTE_METHOD = "relaxed-emd"     # the style method whose palette term sees the image
PALETTE_SALT = 1_000_003           # the palette's samples: key folded with this + style index


class Targets(NamedTuple):
    """What the objective matches, computed once per run.

    Attributes:
      content: ``{layer: f32[h, w, c]}`` content features ``P``.
      style: one ``{method: {layer: T}}`` per style image (Gram ``A``, statistics, ...).
      style_masks: ``None`` or one ``{style layer: f32[h, w]}`` per style image: where on
        the generated image that style's statistics are taken (:mod:`nstjax.objective.masks`).
      content_mask: ``None`` or ``{content layer: f32[h, w]}`` content-loss position
        weights.
      palette: with ``relaxed-emd``, one ``f32[K, 3]`` of pixel colours per style image for
        STROTSS's palette term (:func:`nstjax.losses.patches.palette_loss`); else None.
    """

    content: dict
    style: tuple
    style_masks: tuple | None = None
    content_mask: dict | None = None
    palette: tuple | None = None


def compute_targets(vgg: VGGWeights, content, styles: Sequence, *, objective: Objective,
                    style_masks: Sequence | None = None, content_mask=None,
                    mask_mode: str = "average", keep_weight=masks.KEEP_WEIGHT,
                    alpha=None) -> Targets:
    """Content features ``P`` and per-style, per-method style targets, computed once.

    Args:
      vgg: the network's parameters (:func:`nstjax.load_vgg19`).
      content: ``f32[H, W, 3]`` RGB in [0, 1].
      styles: sequence of style images ``f32[h_s, w_s, 3]`` (sizes may differ).
      objective: the :class:`Objective`.
      style_masks: optional one ``f32[h, w]`` mask in [0, 1] per style image, over the
        generated image (white: that style applies; resampled to the content's size),
        carried down the network by :func:`nstjax.objective.masks.mask_pyramid` (``mask_mode``).
      content_mask: optional ``f32[h, w]`` in [0, 1], white = keep photographic: the
        style maps are multiplied by the erosion of ``1 − c`` (no style statistic sees a
        kept pixel) and, for ``keep_weight`` ≠ 1, the content loss weighted by
        ``1 + (keep_weight − 1) c`` (:func:`nstjax.objective.masks.target_masks`).
      alpha: optional opacity of the content (``uint8[h, w]`` bytes or ``f32`` in [0, 1]):
        one more mask, multiplied into every style's mask and into the content loss's
        weights (:mod:`nstjax.objective.alpha`), so transparent pixels count for nothing.

    References:
      Gatys et al. 2017 §4 (spatial control, guided Gram matrices).
    """
    o = objective
    content = check_image_array(content, "content")
    if styles is None or isinstance(styles, (str, bytes)) or getattr(styles, "ndim", 0) == 3:
        raise ValueError("styles must be a sequence of style images (a list, even of one)")
    styles = [check_image_array(s, f"style {k + 1}" if len(styles) > 1 else "style",
                                margin=STYLE_MARGIN) for k, s in enumerate(styles)]
    if not styles:
        raise ValueError("no style image given")
    check_layer_sizes(content.shape[:2], o.content_layers + o.style_layers, "content")
    for s in styles:
        check_layer_sizes(s.shape[:2], o.style_layers, "style")
    shape = tuple(jnp.shape(content)[:2])
    if alpha is not None:
        style_masks = alpha_style_masks(alpha, style_masks, n_styles=len(styles), shape=shape)
    style_pyramids, content_pyramid = masks.target_masks(
        tuple(jnp.shape(content)[:2]), style_masks, content_mask, n_styles=len(styles),
        style_layers=o.style_layers, content_layers=o.content_layers, mode=mask_mode,
        keep_weight=keep_weight)
    content_features = extract_features(vgg, content, o.content_layers, pooling=o.pooling)
    style = []
    for image in styles:
        features = extract_features(vgg, image, o.style_layers, pooling=o.pooling)
        style.append(style_targets(o.style_losses, features))
    style = scaled_style_targets(style, o, shape, [s.shape[:2] for s in styles])
    palette = (tuple(palette_target(s) for s in styles)
               if PALETTE_METHOD in o.style_losses else None)
    targets = Targets(content=content_features, style=tuple(style),
                      style_masks=style_pyramids, content_mask=content_pyramid,
                      palette=palette)
    if alpha is not None:
        targets = alpha_content_mask(targets, alpha, shape=shape, content_layers=o.content_layers)
    return targets


def positions(shape, layers) -> dict:
    """``{layer: M}``: the number of positions of each layer's map for an image of ``shape``."""
    return {l: float(np.prod(s.shape)) for l, s in jax.eval_shape(
        lambda: masks.mask_pyramid(jnp.ones(tuple(shape)), layers)).items()}


def scaled_style_targets(style_targets_: tuple, objective: Objective, image_shape,
                         style_shapes) -> tuple:
    """Gram targets rescaled from each style image's positions to the image's.

    Gatys' loss compares unnormalised Gram matrices (mathur2017 eq. 2-3), which grow with the
    number of positions ``M``: a style image of another size or shape than the image asks
    for features ``M_style/M`` times as strong (a landscape painting against a square photo:
    a Gram target 0.6 times the painting's own statistics, a dull picture).  So each Gram
    target ``A`` becomes ``A · M_image / M_style`` per layer: the style's per-position
    statistics, as if it covered the image, as jcjohnson/neural-style's ``StyleLoss`` has
    it (each Gram divided by its own map's size).  Where the style image has the image's
    positions this changes nothing; averages (MMD, BN, moments) never change.
    """
    gram_methods = [m for m in objective.style_losses
                    if get_style_loss(m).target is losses.gram_matrix]
    if not gram_methods:
        return tuple(style_targets_)
    image_m = positions(image_shape, objective.style_layers)
    out = []
    for target, shape in zip(style_targets_, style_shapes):
        style_m = positions(shape, objective.style_layers)
        out.append({m: ({l: a * (image_m[l] / style_m[l]) for l, a in per_layer.items()}
                         if m in gram_methods else per_layer)
                    for m, per_layer in target.items()})
    return tuple(out)


def check_layer_sizes(shape, layers, what: str) -> None:
    """Refuse a layer that an image of ``shape`` leaves without a position (``pool5`` needs
    32 pixels on each side): its loss would be silently 0, or NaN for statistics."""
    for layer in layers:
        stride = layer_stride(layer)
        if min(shape) < stride:
            raise ValueError(f"layer {layer} has no positions in a {shape[1]}×{shape[0]} "
                             f"{what} image (it needs {stride} pixels on each side): use a "
                             "larger size or a shallower layer")


def _unweighted_terms(image, vgg, targets: Targets, weights: LossWeights, key,
                      objective: Objective):
    """``(Σ_l c_l L_content,l, f32[M] per-method style losses (blended), TV)``."""
    o = objective
    features = extract_features(vgg, image, o.layers, pooling=o.pooling, remat=o.remat,
                                precision=o.precision)
    content = 0.0
    for i, layer in enumerate(o.content_layers):
        content = content + weights.content_layer_weights[i] * losses.content_loss(
            features[layer], targets.content[layer], kind=o.content_loss,
            mask=None if targets.content_mask is None else targets.content_mask[layer])
    style_features = {layer: features[layer] for layer in o.style_layers}
    if o.resample:
        key = jax.random.fold_in(key, image_hash(image))
    per_method = 0.0
    for s, target in enumerate(targets.style):
        layer_weights, style_masks = weights.style_layer_weights, None
        if targets.style_masks is not None:     # empty layers weigh 0 (nstjax.objective.masks)
            style_masks, present = masks.guard_layer_masks(targets.style_masks[s],
                                                           o.style_layers)
            layer_weights = layer_weights * present
        terms = style_loss_terms(o.style_losses, style_features, target, layer_weights,
                                 weights.hyper, jax.random.fold_in(key, s), masks=style_masks,
                                 normalization=o.normalization)
        if targets.palette is not None:
            palette_key = jax.random.fold_in(key, PALETTE_SALT + s)
            terms = terms + _palette_term(image, targets.palette[s], style_masks,
                                          layer_weights, weights, o, palette_key)
        per_method = per_method + weights.style_blend[s] * terms
    return content, per_method, losses.tv_loss(image, kind=o.tv_loss)


def _palette_term(image, palette, style_masks, layer_weights, weights, objective, key):
    """STROTSS's palette term of ``relaxed-emd`` as an ``f32[M]`` (zero but for that
    method): ``palette · Σ_l w_l · ℓ_p``, so that its hyper-parameter weighs it against one
    layer's relaxed EMD, as the paper's single hypercolumn cost does.  Masked by the style
    mask of its largest layer, resized to the image."""
    mask = None
    if style_masks is not None:
        largest = max(style_masks.values(), key=lambda m: m.shape[0] * m.shape[1])
        mask = jax.image.resize(largest, image.shape[:2], "linear")
    value = palette_loss(image, palette, key, mask=mask)
    m = objective.style_losses.index(PALETTE_METHOD)
    scale = weights.hyper[PALETTE_METHOD]["palette"] * jnp.sum(layer_weights)
    return jnp.zeros(len(objective.style_losses)).at[m].set(scale * value)


def image_hash(image):
    """A ``u32[]`` digest of the bits of ``image`` (no gradient): the per-evaluation key.

    With ``Objective(resample=True)`` the sampling methods' key is ``fold_in(key,
    image_hash(x))``, so every evaluation at a new iterate draws new pairs (li2017's
    code reshuffles them at every forward pass, ``mmd_loss.py``), while the objective stays
    a pure, deterministic function of ``x`` for a given key: the same seed repeats a solve.
    The digest is ``Σ_i b_i·(2i + 1) mod 2³²`` over the float32 bit patterns ``b_i``.
    """
    bits = jax.lax.bitcast_convert_type(
        jax.lax.stop_gradient(jnp.asarray(image, jnp.float32)), jnp.uint32).ravel()
    odd = jnp.arange(bits.size, dtype=jnp.uint32) * jnp.uint32(2) + jnp.uint32(1)
    return jnp.sum(bits * odd, dtype=jnp.uint32)


def objective_terms(image, vgg: VGGWeights, targets: Targets, weights: LossWeights, key, *,
                    objective: Objective) -> dict:
    """The weighted parts of the objective: ``{"content", "style", "tv", "total"}``.

    Pure; ``jit``, ``grad`` and ``vmap`` it freely.  ``style`` includes β, the mix and λ.

    Args:
      image: ``f32[H, W, 3]`` RGB in [0, 1].
      vgg: the network's parameters.
      targets: from :func:`compute_targets`.
      weights: the traced :class:`LossWeights`.
      key: PRNG key of the methods that sample (``mmd-gauss``).
      objective: the static :class:`Objective`.
    """
    content, per_method, tv = _unweighted_terms(image, vgg, targets, weights, key, objective)
    w = weights
    parts = {"content": w.content_weight * content,
             "style": w.style_weight * jnp.sum(w.style_mix * w.style_scales * per_method),
             "tv": w.tv_weight * tv}
    parts["total"] = parts["content"] + parts["style"] + parts["tv"]
    return parts


def total_loss(image, vgg: VGGWeights, targets: Targets, weights: LossWeights, key, *,
               objective: Objective):
    """The whole objective ``α L_content + β L_style + τ TV`` (mathur2017 eq. 5), ``f32[]``."""
    return objective_terms(image, vgg, targets, weights, key, objective=objective)["total"]


def auto_scales(image, vgg: VGGWeights, targets: Targets, weights: LossWeights, key, *,
                objective: Objective):
    """``λ_m`` such that each method's style gradient norm equals the content's (li2017 §4).

    Measured once at a probe near ``image`` (the initial image plus N(0, 0.05²) noise,
    drawn from ``key``: a content init has zero content gradient); falls back to the
    current scale where a gradient vanishes.

    Returns:
      ``f32[M]``.
    """
    probe = jnp.clip(image + 0.05 * jax.random.normal(jax.random.fold_in(key, 7), image.shape),
                     0.0, 1.0)

    def content_part(x):
        return _unweighted_terms(x, vgg, targets, weights, key, objective)[0]

    g_content = jnp.linalg.norm(jax.grad(content_part)(probe))
    scales = []
    for m in range(len(objective.style_losses)):
        def style_part(x, m=m):
            return _unweighted_terms(x, vgg, targets, weights, key, objective)[1][m]
        g_style = jnp.linalg.norm(jax.grad(style_part)(probe))
        ok = (g_style > 0) & jnp.isfinite(g_style) & (g_content > 0)
        scales.append(jnp.where(ok, g_content / jnp.where(ok, g_style, 1.0),
                                weights.style_scales[m]))
    return jnp.stack(scales)
