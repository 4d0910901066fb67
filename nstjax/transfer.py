"""Style transfer as one compiled program: configuration, targets, objective, driver.

The objective (seed 001 eq. 5, seed 003 eq. 3 and §4)::

    L(x) = α Σ_l c_l L_content,l(x)
         + β Σ_s b_s Σ_m μ_m λ_m Σ_l w_l L_m,l(x; style s)
         + τ TV(x)

with ``α`` the content weight, ``β`` the style weight (seed 003's balance factor ``γ``),
``b_s`` the blend of several style images, ``μ_m`` the fusion mix of style methods,
``λ_m`` each method's scale, ``w_l``/``c_l`` the layer weights and ``τ`` the TV weight.
Every one of these is a traced array in :class:`LossWeights`, so sweeps ``vmap`` over them;
layer names, method names, the optimiser and iteration counts are static
(:class:`StyleConfig`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from nstjax import losses, optimize, style_losses
from nstjax.vgg import canonical_layers, extract_features, layer_depth
from nstjax.weights import VGGWeights

DEFAULT_CONTENT_LAYERS = ("relu4_2",)
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
INITS = ("content", "noise", "style")


@dataclasses.dataclass(frozen=True)
class StyleConfig:
    """Settings of a transfer (hashable; the float weights become traced arrays).

    Attributes:
      content_layers, style_layers: layer names (any accepted alias).
      style_loss: method spec, e.g. ``"gram"`` or ``"bn:0.5,mmd-poly:0.5"``.
      content_loss: ``"sum"`` (seed 001 eq. 1) or ``"mse"``.
      content_weight, style_weight, tv_weight: ``α``, ``β`` (balance ``γ``), ``τ``.
      style_layer_weights, content_layer_weights: per-layer weights (default all 1).
      style_blend: weights of several style images (default equal, summing to 1).
      style_scales: ``λ`` per method (default: the registry's measured scales).
      style_hyper: ``(("mmd-poly.c", 1.0), ...)`` method hyper-parameters.
      auto_scale: set each ``λ_m`` once at the start so that the style gradient norm of
        method ``m`` equals the content gradient norm (seed 003 §4), instead of defaults.
      pooling: ``"max"`` or ``"avg"``.
      optimizer: ``lbfgsb`` (default), ``lbfgs``, ``optax-lbfgs`` or ``adam``.
      max_iter, rtol, threshold, lr, history_size: see :func:`nstjax.optimize.minimize`.
      init: ``"content"``, ``"noise"`` or ``"style"`` (or pass ``init_image``).
      remat: recompute VGG activations in the backward pass (less memory).
    """

    content_layers: tuple = DEFAULT_CONTENT_LAYERS
    style_layers: tuple = DEFAULT_STYLE_LAYERS
    style_loss: str = "gram"
    content_loss: str = "sum"
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 0.0
    style_layer_weights: tuple | None = None
    content_layer_weights: tuple | None = None
    style_blend: tuple | None = None
    style_scales: tuple | None = None
    style_hyper: tuple = ()
    auto_scale: bool = False
    pooling: str = "max"
    optimizer: str = "lbfgsb"
    max_iter: int = 500
    rtol: float = 0.0
    threshold: float = -math.inf
    lr: float = 0.02
    history_size: int = 10
    init: str = "content"
    remat: bool = False

    def __post_init__(self):
        for name in ("content_layers", "style_layers"):
            value = getattr(self, name)
            object.__setattr__(self, name, canonical_layers(value))
        for name in ("style_layer_weights", "content_layer_weights", "style_blend",
                     "style_scales"):
            value = getattr(self, name)
            if value is not None:
                value = tuple(float(v) for v in value)
                if not all(math.isfinite(v) and v >= 0 for v in value):
                    raise ValueError(f"{name} must be finite and >= 0, got {value}")
                object.__setattr__(self, name, value)
        hyper = self.style_hyper.items() if isinstance(self.style_hyper, dict) else self.style_hyper
        object.__setattr__(self, "style_hyper", tuple((str(k), float(v)) for k, v in hyper))
        names, _ = style_losses.parse_style_spec(self.style_loss)
        for key, _ in self.style_hyper:
            method, _, param = key.rpartition(".")
            if method not in names or param not in style_losses.get_style_loss(method).hyper:
                raise ValueError(f"unknown style hyper-parameter {key!r}")
        for name in ("content_weight", "style_weight", "tv_weight", "lr"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name.replace('_', '-')} must be finite and >= 0, got {v}")
        if self.content_loss not in ("sum", "mse"):
            raise ValueError(f"content loss must be 'sum' or 'mse', not {self.content_loss!r}")
        if self.pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {self.pooling!r}")
        if self.optimizer not in optimize.OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from "
                             f"{', '.join(optimize.OPTIMIZERS)}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)} (or an image), "
                             f"not {self.init!r}")
        if int(self.max_iter) < 1:
            raise ValueError("max_iter must be >= 1")
        if self.style_layer_weights is not None and \
                len(self.style_layer_weights) != len(self.style_layers):
            raise ValueError(f"{len(self.style_layer_weights)} style layer weights for "
                             f"{len(self.style_layers)} style layers")
        if self.content_layer_weights is not None and \
                len(self.content_layer_weights) != len(self.content_layers):
            raise ValueError("content layer weights and content layers differ in number")
        if self.style_scales is not None and len(self.style_scales) != len(names):
            raise ValueError(f"{len(self.style_scales)} style scales for {len(names)} methods")

    @property
    def style_methods(self) -> tuple[str, ...]:
        return style_losses.parse_style_spec(self.style_loss)[0]

    def static_part(self) -> "StyleConfig":
        """This config with every traced setting neutralised: the key of the compile cache."""
        return dataclasses.replace(
            self, style_loss=",".join(self.style_methods), content_weight=1.0, style_weight=1.0, tv_weight=0.0,
            style_layer_weights=None, content_layer_weights=None, style_blend=None,
            style_scales=None, style_hyper=(), rtol=0.0, threshold=-math.inf, lr=0.02,
            init="content")

    def solver_settings(self) -> "SolverSettings":
        """Traced optimiser settings."""
        return SolverSettings(lr=jnp.float32(self.lr), rtol=jnp.float32(self.rtol),
                              threshold=jnp.float32(self.threshold))

    def structure(self) -> "Structure":
        """The static part: what changes the compiled program."""
        return Structure(self.content_layers, self.style_layers, self.style_methods,
                         self.content_loss, self.pooling, self.optimizer, int(self.max_iter),
                         int(self.history_size), bool(self.remat))

    def loss_weights(self, n_styles: int = 1) -> "LossWeights":
        """The traced part, as float32 arrays (sweep these)."""
        names, mix = style_losses.parse_style_spec(self.style_loss)
        scales = self.style_scales or tuple(style_losses.get_style_loss(n).scale for n in names)
        blend = self.style_blend or (1.0 / n_styles,) * n_styles
        if len(blend) != n_styles:
            raise ValueError(f"{len(blend)} style blend weights for {n_styles} style images")
        hyper = style_losses.default_hyper(names)
        for key, value in self.style_hyper:
            method, _, param = key.rpartition(".")
            hyper[method][param] = jnp.asarray(value, jnp.float32)
        f32 = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
        return LossWeights(
            content=f32(self.content_weight), style=f32(self.style_weight),
            tv=f32(self.tv_weight),
            content_layers=f32(self.content_layer_weights or (1.0,) * len(self.content_layers)),
            style_layers=f32(self.style_layer_weights or (1.0,) * len(self.style_layers)),
            mix=f32(mix), scales=f32(scales), blend=f32(blend), hyper=hyper)


class Structure(NamedTuple):
    """Static settings (hashable): changing one recompiles."""

    content_layers: tuple
    style_layers: tuple
    style_methods: tuple
    content_loss: str
    pooling: str
    optimizer: str
    max_iter: int
    history_size: int
    remat: bool


class SolverSettings(NamedTuple):
    """Traced optimiser settings: Adam's ``lr``, the ``rtol`` and ``threshold`` stops."""

    lr: jax.Array
    rtol: jax.Array
    threshold: jax.Array


class LossWeights(NamedTuple):
    """Traced weights of the objective (a pytree; ``vmap`` over any leaf).

    Attributes:
      content, style, tv: ``f32[]`` α, β (balance γ), τ.
      content_layers: ``f32[Lc]``; style_layers: ``f32[Ls]``.
      mix: ``f32[M]`` fusion weights of the style methods; scales: ``f32[M]`` their λ.
      blend: ``f32[S]`` weights of the style images.
      hyper: ``{method: {param: f32[]}}``.
    """

    content: jax.Array
    style: jax.Array
    tv: jax.Array
    content_layers: jax.Array
    style_layers: jax.Array
    mix: jax.Array
    scales: jax.Array
    blend: jax.Array
    hyper: dict


class Targets(NamedTuple):
    """What the objective matches, computed once per run.

    Attributes:
      content: ``{layer: f32[h, w, c]}`` content features ``P``.
      style: one ``{method: {layer: T}}`` per style image (Gram ``A``, statistics, ...).
    """

    content: dict
    style: tuple


class TransferResult(NamedTuple):
    """Outcome of :func:`stylize`.

    Attributes:
      image: ``f32[H, W, 3]`` RGB in [0, 1].
      loss: ``f32[]`` objective at ``image``.
      history: ``f32[max_iter]`` loss per iteration (NaN after the last).
      n_iter: ``i32[]`` iterations run.
      status: ``i32[]`` an :class:`nstjax.optimize.Status`.
      terms: ``{"content", "style", "tv"}`` weighted parts of the final loss.
      loss_weights: the :class:`LossWeights` used (after automatic scaling).
    """

    image: jax.Array
    loss: jax.Array
    history: jax.Array
    n_iter: jax.Array
    status: jax.Array
    terms: dict
    loss_weights: LossWeights


def _layers_needed(structure: Structure) -> tuple:
    layers = set(structure.content_layers) | set(structure.style_layers)
    return tuple(sorted(layers, key=layer_depth))


def compute_targets(weights: VGGWeights, content, styles: Sequence, *,
                    config: StyleConfig) -> Targets:
    """Content features ``P`` and per-style, per-method style targets, computed once.

    Args:
      weights: VGG weights.
      content: ``f32[H, W, 3]`` RGB in [0, 1].
      styles: sequence of style images ``f32[h_s, w_s, 3]`` (sizes may differ).
      config: the :class:`StyleConfig`.
    """
    s = config.structure()
    cf = extract_features(weights, content, s.content_layers, pooling=s.pooling)
    style_targets = []
    for style in styles:
        sf = extract_features(weights, style, s.style_layers, pooling=s.pooling)
        style_targets.append(style_losses.style_targets(s.style_methods, sf))
    return Targets(content=cf, style=tuple(style_targets))


def _objective_terms(image, weights, targets: Targets, lw: LossWeights, key,
                     structure: Structure):
    feats = extract_features(weights, image, _layers_needed(structure),
                             pooling=structure.pooling, remat=structure.remat)
    content = 0.0
    for i, layer in enumerate(structure.content_layers):
        content = content + lw.content_layers[i] * losses.content_loss(
            feats[layer], targets.content[layer], kind=structure.content_loss)
    style_feats = {l: feats[l] for l in structure.style_layers}
    per_method = 0.0
    for s, style_target in enumerate(targets.style):
        per_method = per_method + lw.blend[s] * style_losses.style_loss_terms(
            structure.style_methods, style_feats, style_target, lw.style_layers, lw.hyper,
            jax.random.fold_in(key, s))
    return content, per_method, losses.tv_loss(image)


def objective_terms(image, weights: VGGWeights, targets: Targets, loss_weights: LossWeights,
                    *, config: StyleConfig, key=None) -> dict:
    """The weighted parts of the objective: ``{"content", "style", "tv", "total"}``.

    Pure; ``jit``, ``grad`` and ``vmap`` it freely.  ``style`` includes β, the mix and λ.
    """
    key = jax.random.PRNGKey(0) if key is None else key
    content, per_method, tv = _objective_terms(image, weights, targets, loss_weights, key,
                                               config.structure())
    lw = loss_weights
    parts = {"content": lw.content * content,
             "style": lw.style * jnp.sum(lw.mix * lw.scales * per_method),
             "tv": lw.tv * tv}
    parts["total"] = parts["content"] + parts["style"] + parts["tv"]
    return parts


def gatys_loss(image, weights: VGGWeights, targets: Targets, loss_weights: LossWeights, *,
               config: StyleConfig, key=None):
    """The total objective ``α L_content + β L_style + τ TV`` (seed 001 eq. 5), ``f32[]``."""
    return objective_terms(image, weights, targets, loss_weights, config=config,
                           key=key)["total"]


def auto_scales(image, weights: VGGWeights, targets: Targets, loss_weights: LossWeights, *,
                config: StyleConfig, key=None):
    """``λ_m`` such that each method's style gradient norm equals the content's (seed 003 §4).

    Measured once at ``image`` (the initial image); falls back to the registry scale where a
    gradient vanishes (e.g. a content init has zero content gradient: then the gradient at
    a slightly perturbed image is used).
    """
    key = jax.random.PRNGKey(0) if key is None else key
    s = config.structure()
    probe = jnp.clip(image + 0.05 * jax.random.normal(jax.random.fold_in(key, 7), image.shape),
                     0.0, 1.0)

    def content_part(x):
        return _objective_terms(x, weights, targets, loss_weights, key, s)[0]

    gc = jnp.linalg.norm(jax.grad(content_part)(probe))
    scales = []
    for m in range(len(s.style_methods)):
        def style_part(x, m=m):
            return _objective_terms(x, weights, targets, loss_weights, key, s)[1][m]
        gs = jnp.linalg.norm(jax.grad(style_part)(probe))
        ok = (gs > 0) & jnp.isfinite(gs) & (gc > 0)
        scales.append(jnp.where(ok, gc / jnp.where(ok, gs, 1.0), loss_weights.scales[m]))
    return jnp.stack(scales)


# ---------------------------------------------------------------------------- the driver

class _Sinks:
    # Host callbacks run on XLA's threads, so these are process-wide, not thread-local.
    fn = None
    snapshot = None


_progress_sink = _Sinks()


def _emit_progress(iteration, value):
    sink = getattr(_progress_sink, "fn", None)
    if sink is not None:
        sink(int(iteration), float(value))


def _emit_snapshot(iteration, x):
    sink = getattr(_progress_sink, "snapshot", None)
    if sink is not None:
        sink(int(iteration), x)


def solve(x0, weights: VGGWeights, targets: Targets, loss_weights: LossWeights, key, *,
          config: StyleConfig, settings: SolverSettings | None = None, lower=0.0,
          upper=1.0, progress: bool = False, snapshot_every: int = 0):
    """Optimise the objective from ``x0``: pure, for use inside ``jit``/``vmap``.

    Returns:
      An :class:`nstjax.optimize.OptimizeResult`.
    """
    s = config.structure()
    settings = config.solver_settings() if settings is None else settings
    fun = lambda x: gatys_loss(x, weights, targets, loss_weights, config=config, key=key)  # noqa
    return optimize.minimize(
        fun, x0, method=s.optimizer, max_iter=s.max_iter, lower=lower, upper=upper,
        lr=settings.lr, rtol=settings.rtol, threshold=settings.threshold,
        history_size=s.history_size, progress=_emit_progress if progress else None,
        snapshot=_emit_snapshot if snapshot_every else None, snapshot_every=snapshot_every)


@jax.jit(static_argnames=("config", "progress", "snapshot_every"))
def _run(x0, weights, targets, loss_weights, settings, key, config, progress,
         snapshot_every):
    if config.auto_scale:
        loss_weights = loss_weights._replace(
            scales=auto_scales(x0, weights, targets, loss_weights, config=config, key=key))
    res = solve(x0, weights, targets, loss_weights, key, config=config, settings=settings,
                progress=progress, snapshot_every=snapshot_every)
    terms = objective_terms(res.x, weights, targets, loss_weights, config=config, key=key)
    return res, terms, loss_weights


def initial_image(content, styles, init, key):
    """``"content"``, ``"noise"`` (uniform, seeded) or ``"style"`` (first style, resized)."""
    if init == "content":
        return content
    if init == "noise":
        return jax.random.uniform(key, content.shape, jnp.float32)
    if init == "style":
        return jax.image.resize(styles[0], content.shape, "linear").clip(0.0, 1.0)
    raise ValueError(f"init must be one of {', '.join(INITS)}, not {init!r}")


def stylize(weights: VGGWeights, content, style, *, config: StyleConfig = StyleConfig(),
            key=None, init_image=None, loss_weights: LossWeights | None = None,
            progress: Callable[[int, float], None] | None = None,
            snapshot: Callable[[int, object], None] | None = None,
            snapshot_every: int = 0) -> TransferResult:
    """Run a whole style transfer as one compiled program.

    Args:
      weights: from :func:`nstjax.load_vgg19`.
      content: ``f32[H, W, 3]`` RGB in [0, 1].
      style: one style image or a sequence of them (blended by ``config.style_blend``).
      config: a :class:`StyleConfig`.
      key: PRNG key (noise init and sampling losses); default ``PRNGKey(0)``.
      init_image: start from this ``f32[H, W, 3]`` instead of ``config.init``.
      loss_weights: override ``config.loss_weights()`` (traced: no recompile).
      progress: host function ``(iteration, loss)`` called after every iteration.
      snapshot: host function ``(iteration, image)`` called every ``snapshot_every``
        iterations.

    Returns:
      A :class:`TransferResult`.
    """
    key = jax.random.PRNGKey(0) if key is None else key
    content = jnp.asarray(content, jnp.float32)
    styles = [jnp.asarray(style, jnp.float32)] if hasattr(style, "ndim") and style.ndim == 3 \
        else [jnp.asarray(s, jnp.float32) for s in style]
    targets = compute_targets(weights, content, styles, config=config)
    lw = config.loss_weights(len(styles)) if loss_weights is None else loss_weights
    k_init, k_loss = jax.random.split(key)
    x0 = (jnp.asarray(init_image, jnp.float32) if init_image is not None
          else initial_image(content, styles, config.init, k_init))
    if x0.shape != content.shape:
        raise ValueError(f"init image shape {x0.shape} differs from content {content.shape}")
    every = int(snapshot_every) if snapshot is not None else 0
    _progress_sink.fn, _progress_sink.snapshot = progress, snapshot
    try:
        res, terms, lw = _run(x0, weights, targets, lw, config.solver_settings(), k_loss,
                              config.static_part(), progress is not None, every)
        jax.block_until_ready(res.x)
    finally:
        _progress_sink.fn = _progress_sink.snapshot = None
    return TransferResult(image=res.x, loss=res.value, history=res.history,
                          n_iter=res.n_iter, status=res.status,
                          terms={k: v for k, v in terms.items() if k != "total"},
                          loss_weights=lw)
