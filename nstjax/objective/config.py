"""The configuration of a transfer, split by lifetime: static objective, traced weights, solver.

* :class:`Objective` (frozen, hashable): layers, style methods, content-loss kind, pooling
  and memory options.  It is the compile key: changing it builds a new program.
* :class:`LossWeights` (a pytree of float32 arrays): every weight of the objective, named
  like the command-line flags.  Traced, so sweeps ``vmap`` over any leaf without compiling
  again.  Made by :func:`loss_weights`, which validates each value once.
* :class:`Solver` (a pytree): which optimiser, how many iterations and the L-BFGS history are
  static fields (part of the compile key); the learning rate and the stop rules are traced
  leaves.

The objective these parametrise (mathur2017 eq. 5, li2017 eq. 3 and §4)::

    L(x) = α Σ_l c_l L_content,l(x)
         + β Σ_s b_s Σ_m μ_m λ_m Σ_l w_l L_m,l(x; style s)
         + τ TV(x)

with ``α`` ``content_weight``, ``β`` ``style_weight`` (li2017's balance factor ``γ``),
``b_s`` ``style_blend``, ``μ_m`` ``style_mix``, ``λ_m`` ``style_scales``, ``w_l``/``c_l``
the layer weights and ``τ`` ``tv_weight``.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.losses import get_style_loss
from nstjax.losses.core import tv_kind
from nstjax.model.pooling import POOLINGS
from nstjax.objective.pyramid import DEFAULT_LEVELS, check_parametrization
from nstjax.model.vgg import (
    canonical_layers,
    check_precision,
    layer_depth,
    remat_policy,
)

DEFAULT_CONTENT_LAYERS = ("relu4_2",)
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LOSSES = ("sum", "mse", "self-similarity")
# The registry's λ (``StyleLoss.scale``) balance a style method against ``½Σ(F−P)²`` at
# relu4_2 of a 256×192 image: 512 channels × 32×24 positions.  There ``mean (F−P)²`` is
# ``2/(512·768)`` of that sum, so under ``"mse"`` the default λ are the registry's times this
# factor: the same weights give the same picture as ``"sum"`` at 256×192, and at every
# other size too.
# For "self-similarity" (no closed form against the sum) the factor is the measured ratio of
# the two content gradients' norms at the registry's start (uniform noise, seed 0; tubingen
# at 256 px, relu4_2): the λ measurement's own procedure.
CONTENT_UNIT = {"sum": 1.0, "mse": 2.0 / (512.0 * 768.0), "self-similarity": 1.5e-14}
NORMALIZATIONS = ("nstjax", "paper")
TV_LOSSES = ("mean", "sum")

# Largest weight accepted: VGG features reach ~1e3, Gram losses ~1e10 and a sum of squares
# over a big image ~1e14, so a weight above 1e20 overflows float32 (max 3.4e38) in the
# objective; such a weight is refused where it is made, not discovered as an inf mid-solve.
MAX_WEIGHT = 1e20


def check_weight(name: str, value, *, positive: bool = False) -> np.ndarray:
    """``value`` as float32 after checking every entry is finite, ``>= 0`` and not huge.

    The one check every weight goes through (the objective's weights, sweep members, the
    command lines' flags).  Raises ``ValueError`` naming ``name`` as the flag spells it.
    """
    flag = name.replace("_", "-")
    try:
        if value is None or isinstance(value, (str, bytes)):
            raise TypeError
        arr = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{flag} must be a number or a list of numbers, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{flag} must be finite, got {_show(value)}")
    if np.any(arr < 0) or (positive and np.any(arr == 0)):
        raise ValueError(f"{flag} must be {'> 0' if positive else '>= 0'}, got {_show(value)}")
    if np.any(arr > MAX_WEIGHT):
        raise ValueError(f"{flag} {_show(value)} is above {MAX_WEIGHT:g}: the objective would "
                         "overflow float32")
    return arr.astype(np.float32)


def _show(value) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return ",".join(f"{float(v):g}" for v in np.ravel(np.asarray(value, np.float64)))
    return f"{float(value):g}"


# --------------------------------------------------------------------------- objective


@dataclasses.dataclass(frozen=True)
class Objective:
    """The static structure of the objective: the compile key.

    Attributes:
      content_layers, style_layers: VGG19 layer names (any accepted alias; stored canonical).
      style_losses: registered style method names, e.g. ``("bn", "mmd-poly")`` (their fusion
        weights are :attr:`LossWeights.style_mix`).
      content_loss: ``"mse"`` (``mean (F−P)²`` over channels and positions, mathur2017 §3.3;
        the default) or ``"sum"`` (``½Σ(F−P)²``, mathur2017 eq. 1).  Gatys' Gram loss
        (mathur2017 eq. 3) is already per position (``1/M²`` of a sum of ``M²`` products), so
        with ``"mse"`` both terms are per position and the same weights give the same
        balance at every size; ``"sum"`` grows with the number of pixels, so its weights
        hold at one size only (doubling the long edge makes the content 4× heavier).
        ``"self-similarity"``: STROTSS's layout loss (Kolkin et al. 2019 eq. 7-8,
        :func:`nstjax.losses.core.self_similarity_loss`), per position too.
        ``None`` (the default) is ``"mse"``, or ``"sum"`` with ``normalization="paper"``
        (li2017's code sums, and its λ are for a sum).
      pooling: ``"max"``, ``"avg"`` (Gatys et al. 2016 §2; not in the seeds) or
        ``"l2"`` (crowsonkb's scaled L2 pooling, :func:`nstjax.model.pooling.l2_pool2x2`).
      auto_scale: set each ``λ_m`` once at the start so that method ``m``'s style gradient
        norm equals the content gradient norm (li2017 §4).
      remat: checkpointing policy, ``"none"``, ``"conv"`` or ``"block"``: what the backward
        pass recomputes instead of keeping (less memory, more time; see
        :func:`nstjax.model.vgg.vgg_forward`).  ``True``/``False`` mean ``"conv"``/``"none"``.
      precision: ``"float32"``, ``"tf32"`` (TensorFloat-32 multiplies on GPUs that have
        them) or ``"bf16"`` (bfloat16 activations; Gram matrices, statistics and the loss
        in float32).
      normalization: ``"nstjax"`` (each method's own per-layer normaliser) or ``"paper"``
        (li2017's released code: per-layer factors M/2, M, 1/(4N), M/2 on ``mmd-linear``,
        ``mmd-poly``, ``mmd-gauss``, ``bn`` and its λ; see :mod:`nstjax.losses.builtin`).
      resample: draw new pairs for the sampling methods (``mmd-gauss``) at every evaluation,
        as li2017's code does (for ``adam``/``gd``; line-search optimisers are refused, see
        :func:`nstjax.run.start.check_solver`).  ``False``: one fixed draw per solve.
      tv_loss: ``"mean"`` (the squared neighbour differences per value, in 8-bit levels:
        a weight means the same at every size) or ``"sum"`` (their sum over [0, 1] pixels,
        as Johnson's neural-style and Gatys' summed losses); ``None`` (the default) goes
        with the content loss (:func:`nstjax.losses.core.tv_kind`).
      parametrization: what the optimiser updates: ``"pixels"`` or ``"laplacian"``, the
        coefficients of a Laplacian pyramid of the image with ``pyramid_levels`` halvings
        (STROTSS 5, NNST 8; fewer where the image is smaller), without the pixel box (the
        result is clipped to [0, 1]), :mod:`nstjax.objective.pyramid`.
    """

    content_layers: tuple = DEFAULT_CONTENT_LAYERS
    style_layers: tuple = DEFAULT_STYLE_LAYERS
    style_losses: tuple = ("gram-chw",)
    content_loss: str | None = None
    pooling: str = "max"
    auto_scale: bool = False
    remat: str = "none"
    precision: str = "float32"
    normalization: str = "nstjax"
    resample: bool = False
    tv_loss: str | None = None
    parametrization: str = "pixels"
    pyramid_levels: int = DEFAULT_LEVELS

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("content_layers", canonical_layers(self.content_layers))
        set_("style_layers", canonical_layers(self.style_layers))
        methods = (self.style_losses,) if isinstance(self.style_losses, str) \
            else tuple(self.style_losses)
        if not methods:
            raise ValueError("no style loss given")
        for m in methods:
            get_style_loss(m)
        if len(set(methods)) != len(methods):
            raise ValueError(f"style loss named twice: {','.join(methods)}")
        set_("style_losses", methods)
        if self.content_loss is None:
            set_("content_loss", "sum" if self.normalization == "paper" else "mse")
        if self.content_loss not in CONTENT_LOSSES:
            raise ValueError(f"content loss must be one of {', '.join(CONTENT_LOSSES)}, not "
                             f"{self.content_loss!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {self.pooling!r}")
        set_("auto_scale", bool(self.auto_scale))
        set_("remat", remat_policy(self.remat))
        set_("precision", check_precision(self.precision))
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be 'nstjax' or 'paper', not "
                             f"{self.normalization!r}")
        set_("resample", bool(self.resample))
        if self.tv_loss is None:
            set_("tv_loss", tv_kind(self.content_loss))
        if self.tv_loss not in TV_LOSSES:
            raise ValueError(f"tv loss must be one of {', '.join(TV_LOSSES)}, not "
                             f"{self.tv_loss!r}")
        check_parametrization(self.parametrization)
        try:
            levels = operator.index(self.pyramid_levels)
        except TypeError:
            levels = None
        if levels is None or isinstance(self.pyramid_levels, bool) or not 1 <= levels <= 16:
            raise ValueError(f"pyramid levels must be a whole number from 1 to 16, not "
                             f"{self.pyramid_levels!r}")
        set_("pyramid_levels", int(levels))

    @property
    def layers(self) -> tuple[str, ...]:
        """Every layer the objective reads, in forward order."""
        return tuple(sorted(set(self.content_layers) | set(self.style_layers),
                            key=layer_depth))

    def hyper_names(self) -> tuple[str, ...]:
        """``("mmd-poly.c", ...)``: the hyper-parameters of this objective's methods."""
        return tuple(f"{m}.{p}" for m in self.style_losses for p in get_style_loss(m).hyper)


# ------------------------------------------------------------------------ loss weights


class LossWeights(NamedTuple):
    """Traced weights of the objective (a pytree; ``vmap`` over any leaf).

    Made by :func:`loss_weights`; the names are the flags'.

    Attributes:
      content_weight, style_weight, tv_weight: ``f32[]`` α, β (balance γ), τ.
      content_layer_weights: ``f32[Lc]``; style_layer_weights: ``f32[Ls]``.
      style_mix: ``f32[M]`` fusion weights of the style methods.
      style_scales: ``f32[M]`` their λ.
      style_blend: ``f32[S]`` weights of the style images, summing to 1.
      hyper: ``{method: {param: f32[]}}`` method hyper-parameters.
    """

    content_weight: jax.Array
    style_weight: jax.Array
    tv_weight: jax.Array
    content_layer_weights: jax.Array
    style_layer_weights: jax.Array
    style_mix: jax.Array
    style_scales: jax.Array
    style_blend: jax.Array
    hyper: dict


SWEEPABLE = tuple(f for f in LossWeights._fields if f != "hyper")
# li2017's released code computes its Gaussian kernel as exp(−γ d) with γ = 1/mean d, not
# the text's exp(−d/(2σ²)): paper mode follows the code (``mmd-gauss.width`` 1).
PAPER_GAUSS_WIDTH = 1.0


# τ of the per-value TV under the per-position content losses: with the default style term
# (``gram-chw``) τ = 1 and 3.3 give the same speckle and patch distance on
# benchmarks/classic_look.py, and 3 keeps the strokes; with Gatys' summed losses no TV, as
# in the papers.
DEFAULT_TV_WEIGHT = {"sum": 0.0, "mse": 3.0, "self-similarity": 10.0}


def loss_weights(objective: Objective, *, n_styles: int = 1,
                 content_weight=1.0, style_weight=100.0, tv_weight=None,
                 content_layer_weights=None, style_layer_weights=None, style_mix=None,
                 style_scales=None, style_blend=None,
                 hyper: Mapping[str, float] | None = None) -> LossWeights:
    """Validated :class:`LossWeights` for ``objective`` (every check happens here, once).

    Args:
      objective: the :class:`Objective` the weights belong to.
      n_styles: number of style images.
      content_weight, style_weight, tv_weight: α, β, τ (τ's default:
        :data:`DEFAULT_TV_WEIGHT` for the objective's content loss).
      content_layer_weights, style_layer_weights: one per layer (default all 1).
      style_mix: fusion weight per style method (default all 1).
      style_scales: ``λ`` per method (default: the registry's measured scales; with
        ``normalization="paper"`` li2017's code's, where the method has one).
      style_blend: weight per style image, normalised to sum to 1 (default equal); a zero
        sum is refused.
      hyper: ``{"mmd-poly.c": 0.0, ...}`` (default: the registry's).

    Raises:
      ValueError: a negative, non-finite or overflowing weight, or a list of the wrong length.
    """
    o = objective
    m = len(o.style_losses)

    def vector(name, value, n, default, what):
        arr = np.atleast_1d(check_weight(name, default if value is None else value))
        if arr.shape != (n,):
            raise ValueError(f"{name.replace('_', '-')} has {arr.size} weights for {n} {what}")
        return jnp.asarray(arr)

    blend = vector("style_blend", style_blend, n_styles, (1.0,) * n_styles, "style images")
    total = float(jnp.sum(blend))
    if total <= 0:
        raise ValueError("style-blend weights sum to 0: give at least one positive weight")
    hyper_values = default_hyper(o.style_losses)
    if o.normalization == "paper" and "mmd-gauss" in hyper_values:
        hyper_values["mmd-gauss"]["width"] = jnp.asarray(PAPER_GAUSS_WIDTH, jnp.float32)
    for name, value in (hyper or {}).items():
        method, _, param = name.rpartition(".")
        if method not in hyper_values or param not in hyper_values[method]:
            raise ValueError(f"unknown style hyper-parameter {name!r}; this objective has "
                             f"{', '.join(o.hyper_names()) or 'none'}")
        hyper_values[method][param] = jnp.asarray(_finite(name, value), jnp.float32)
    return LossWeights(
        content_weight=jnp.asarray(check_weight("content_weight", content_weight)),
        style_weight=jnp.asarray(check_weight("style_weight", style_weight)),
        tv_weight=jnp.asarray(check_weight(
            "tv_weight", DEFAULT_TV_WEIGHT[o.content_loss] if tv_weight is None else tv_weight)),
        content_layer_weights=vector("content_layer_weights", content_layer_weights,
                                     len(o.content_layers), (1.0,) * len(o.content_layers),
                                     "content layers"),
        style_layer_weights=vector("style_layer_weights", style_layer_weights,
                                   len(o.style_layers), (1.0,) * len(o.style_layers),
                                   "style layers"),
        style_mix=vector("style_mix", style_mix, m, (1.0,) * m, "style methods"),
        style_scales=vector("style_scales", style_scales, m,
                            tuple(default_scale(n, o.normalization, o.content_loss)
                                  for n in o.style_losses),
                            "style methods"),
        style_blend=blend / total,
        hyper=hyper_values)


def _finite(name, value) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v:g}")
    return v


def default_scale(method: str, normalization: str = "nstjax",
                  content_loss: str = "sum") -> float:
    """The registry's λ of ``method`` under ``normalization`` (``paper_scale`` if any),
    converted to the content loss it is balanced against (:data:`CONTENT_UNIT`)."""
    entry = get_style_loss(method)
    if normalization == "paper" and entry.paper_scale is not None:
        return entry.paper_scale * CONTENT_UNIT[content_loss]
    return entry.scale * CONTENT_UNIT[content_loss]


def default_hyper(methods: Sequence[str]) -> dict:
    """Default hyper-parameters of the named methods, as float32 arrays (traceable)."""
    return {n: {k: jnp.asarray(v, jnp.float32) for k, v in get_style_loss(n).hyper.items()}
            for n in methods}


def replace_weight(weights: LossWeights, name: str, value) -> LossWeights:
    """``weights`` with one leaf (``style_weight``, ``hyper.mmd-poly.c``, ...) replaced.

    The value goes through the same checks as in :func:`loss_weights`; used by sweeps.
    """
    if name.startswith("hyper."):
        _, method, param = name.split(".", 2) if name.count(".") >= 2 else (None, "", "")
        if method not in weights.hyper or param not in weights.hyper[method]:
            raise ValueError(f"cannot sweep {name!r}: no such hyper-parameter in this "
                             "objective")
        new = jnp.asarray(value, jnp.float32)
        if new.shape != ():
            raise ValueError(f"{name}: each value must be a number, got shape {new.shape}")
        _finite(name, value)
        hyper = {m: dict(p) for m, p in weights.hyper.items()}
        hyper[method][param] = new
        return weights._replace(hyper=hyper)
    if name not in SWEEPABLE:
        raise ValueError(f"cannot sweep {name!r}; sweepable: {', '.join(SWEEPABLE)}, "
                         "hyper.<method>.<param>")
    old = getattr(weights, name)
    new = jnp.asarray(check_weight(name, value))
    if new.shape != old.shape:
        what = {"style_layer_weights": "style layer", "content_layer_weights": "content layer",
                "style_mix": "style-loss method", "style_scales": "style-loss method",
                "style_blend": "style image"}.get(name)
        raise ValueError(f"{name.replace('_', '-')}: each value must be "
                         + (f"{old.size} weights, one per {what}" if what else "one number")
                         + f", got {_show(value)}")
    if name == "style_blend":
        if float(jnp.sum(new)) <= 0:
            raise ValueError("style-blend weights sum to 0: give at least one positive weight")
        new = new / jnp.sum(new)
    return weights._replace(**{name: new})
