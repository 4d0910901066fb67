"""Neural Neighbor Style Transfer (Kolkin et al. 2022): :func:`nnst`.

Coarse to fine over a Laplacian pyramid of the image (8 levels, §3.2): at each scale the
content's hypercolumns (channel-normalised VGG activations, resized to a quarter of the
image and stacked) are replaced by their nearest style hypercolumns under centred cosine
distance (:mod:`nstjax.losses.neighbors`), and Adam fits the pyramid's coefficients at that
scale and coarser to them (cosine loss).  A last pass at full size matches each layer's
features to their nearest style features directly (feature splitting, sampled to about 64
positions per side with fresh offsets each step), then the colours are matched in OkLab
(:func:`nstjax.run.oklab.nnst_color_match`).

Written from the paper and the authors' code, nkolkin13/NeuralNeighborStyleTransfer at
commit 290976a (``styleTransfer.py``, ``utils/stylize.py``, ``utils/featureExtract.py``):
its defaults are 200 Adam steps at lr 2e-3 per scale, ``alpha`` 0.75, four scales at 512
px and five at 1024 (here: scales down to about 64 px), rotations of the style as extra
features, the start the content with its three finest levels removed (two from 1024 px).
Departures, each deliberate:

* Caffe VGG19 (this project's weights) in place of torchvision's VGG16; the same layers by
  name (relu1_1, relu1_2, relu2_1, relu2_2, relu3_1-3, relu4_1-3).
* Each set is centred by its whole mean before the search; the authors centre each block
  of their chunked search by the block's mean, which makes a match depend on the chunking.
* In the feature-splitting pass, layers of 64 positions per side or fewer use every
  position; the authors' loop reuses the previous layer's samples there (an unbound or
  stale variable).
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nstjax.losses.neighbors import (
    cosine_target_loss, nearest_distance_loss, replace_features,
)
from nstjax.model.vgg import preprocess, vgg_forward
from nstjax.objective.pyramid import decompose, synthesize
from nstjax.run import memory
from nstjax.run.hooks import Callbacks
from nstjax.run.oklab import nnst_color_match
from nstjax.run.transfer_memory import abstract_vgg

LAYERS = ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3",
          "relu4_1", "relu4_2", "relu4_3")
LEVELS = 8
COARSEST = 64          # px: the coarsest scale's long side is at least this
SAMPLE_SIDE = 64       # feature-splitting samples about this many positions per side
CHUNK = 10             # steps per compiled call (progress, Ctrl-C)


class NNSTResult(NamedTuple):
    """Outcome of :func:`nnst`.

    Attributes:
      image: ``f32[H, W, 3]`` RGB in [0, 1], after the colour match when asked for.
      raw: the optimised image before the colour match.
      loss: ``f32[]`` the last pass's last loss.
      history: ``f32[T]`` loss per step over every pass, end to end (each pass its own
        loss: cosine at each scale, nearest distance in the last).
      n_iter: steps run; stopped: a stop request ended it.
      sizes: ``(h, w)`` of each pass.
    """

    image: jax.Array
    raw: jax.Array
    loss: float
    history: np.ndarray
    n_iter: int
    stopped: bool
    sizes: tuple


def scale_count(size: int, coarsest: int = COARSEST) -> int:
    """Scales from ``size`` down by halvings while the long side stays ≥ ``coarsest``
    (four at 512 px and five at 1024, as the authors'; one below 128)."""
    return max(1, 1 + int(math.floor(math.log2(max(size, 1) / coarsest))))


def _aligned_matrix(n_out: int, n_in: int):
    """Linear interpolation with corners aligned (PyTorch's ``align_corners=True``)."""
    pos = np.zeros(n_out) if n_out == 1 else np.arange(n_out) * (n_in - 1) / (n_out - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), lo] += 1.0 - (pos - lo)
    m[np.arange(n_out), hi] += pos - lo
    return jnp.asarray(m)


def resize_aligned(x, h: int, w: int):
    """``f32[H, W, C]`` bilinearly resized to ``h × w`` with corners aligned."""
    return jnp.einsum("ah,hwc,bw->abc", _aligned_matrix(h, x.shape[0]), x,
                      _aligned_matrix(w, x.shape[1]), precision=jax.lax.Precision.HIGHEST)


def _features(vgg, image):
    feats = vgg_forward(vgg.params, preprocess(vgg, image)[None], layers=LAYERS)
    return [feats[n][0] for n in LAYERS]


def hypercolumns(vgg, image):
    """``f32[(H//4)(W//4), D]``: each layer divided by its channel count, resized to a
    quarter of the image (corners aligned) and stacked (the authors' ``phi_cat``)."""
    h, w = max(image.shape[0] // 4, 1), max(image.shape[1] // 4, 1)
    cols = [resize_aligned(f / f.shape[-1], h, w) for f in _features(vgg, image)]
    return jnp.concatenate(cols, -1).reshape(h * w, -1)


def _rotations(image, flip: bool):
    return [jnp.rot90(image, k) for k in range(4 if flip else 1)]


def _sample(f, stride: int, offset):
    """About every ``stride``-th position of ``f: f32[h, w, c]`` from ``offset``."""
    if stride <= 1:
        return f.reshape(-1, f.shape[-1])
    rows = jnp.minimum(offset[0] + stride * jnp.arange(max(1, f.shape[0] // stride)),
                       f.shape[0] - 1)
    cols = jnp.minimum(offset[1] + stride * jnp.arange(max(1, f.shape[1] // stride)),
                       f.shape[1] - 1)
    return f[rows][:, cols].reshape(-1, f.shape[-1])


@functools.partial(jax.jit, static_argnames=("scl", "flip", "block"))
def _scale_target(vgg, c_pyr, pyr, s_pyr, weight, *, scl: int, flip: bool, block):
    """The replaced hypercolumns of scale ``scl``: the search runs on the content mixed
    with ``weight`` of the current image's coarse levels under the content's finest
    (``output_extract`` in the authors' code)."""
    extract = synthesize([c_pyr[scl]] + pyr[scl + 1:])
    c_here = synthesize(c_pyr[scl:])
    query = hypercolumns(vgg, extract * weight + c_here * (1.0 - weight))
    s_here = synthesize(s_pyr[scl:])
    reference = jnp.concatenate([hypercolumns(vgg, r) for r in _rotations(s_here, flip)])
    return replace_features(query, reference, block=block)


@functools.partial(jax.jit, static_argnames=("flip",))
def _style_features(vgg, style, *, flip: bool):
    return [_features(vgg, r) for r in _rotations(style, flip)]


_decompose = jax.jit(decompose, static_argnums=1)
_synthesize = jax.jit(synthesize)


def _hypercolumn_loss(levels, vgg, target, key):
    del key
    return cosine_target_loss(hypercolumns(vgg, synthesize(levels)), target)


def _splitting_loss(levels, vgg, style_feats, key):
    current = _features(vgg, synthesize(levels))
    total = 0.0
    for i, f in enumerate(current):
        stride = max(f.shape[:2]) // SAMPLE_SIDE if max(f.shape[:2]) > SAMPLE_SIDE else 1
        offset = jax.random.randint(jax.random.fold_in(key, i), (2,), 0, max(stride, 1))
        reference = jnp.concatenate([_sample(s[i], stride, offset) for s in style_feats])
        total = total + nearest_distance_loss(_sample(f, stride, offset), reference)
    return total


@functools.partial(jax.jit, static_argnames=("loss_fn",))
def _chunk(levels, state, start, count, lr, vgg, data, key, *, loss_fn):
    """``count`` (≤ CHUNK) Adam steps on ``loss_fn``; the losses in ``f32[CHUNK]``."""
    optimizer = optax.adam(lr)

    def body(i, carry):
        levels, state, history = carry
        value, grad = jax.value_and_grad(loss_fn)(levels, vgg, data,
                                                  jax.random.fold_in(key, start + i))
        updates, state = optimizer.update(grad, state, levels)
        return optax.apply_updates(levels, updates), state, history.at[i].set(value)

    history = jnp.full((CHUNK,), jnp.nan, jnp.float32)
    return jax.lax.fori_loop(0, count, body, (levels, state, history))


def _fit(levels, loss_fn, data, *, vgg, lr, iters, key, callbacks, done):
    """Adam on ``levels`` for ``iters`` steps, CHUNK at a time: ``(levels, losses,
    stopped)``."""
    state = optax.adam(lr).init(levels)
    losses = []
    while len(losses) < iters:
        count = min(CHUNK, iters - len(losses))
        levels, state, hist = _chunk(levels, state, len(losses), count, jnp.float32(lr), vgg,
                                     data, key, loss_fn=loss_fn)
        for value in np.asarray(hist[:count]):
            losses.append(float(value))
            if callbacks.progress is not None:
                callbacks.progress(done + len(losses), losses[-1])
        n = done + len(losses)
        if callbacks.snapshot is not None and callbacks.snapshot_every and \
                n % callbacks.snapshot_every == 0:
            callbacks.snapshot(n, jnp.clip(_synthesize(levels), 0.0, 1.0))
        if callbacks.should_stop is not None and callbacks.should_stop():
            return levels, losses, True
    return levels, losses, False


def nnst(vgg, content, style, *, key, iters: int = 200, lr: float = 2e-3,
         alpha: float = 0.75, scales: int | None = None, flip: bool = True,
         final_pass: bool = True, colorize: bool = True, block: int | None = None,
         callbacks: Callbacks | None = None) -> NNSTResult:
    """Neural Neighbor Style Transfer of ``content`` in the style of ``style``.

    Args:
      vgg: the network's parameters (:func:`nstjax.load_vgg19`).
      content, style: ``f32[H, W, 3]`` RGB in [0, 1] (the style at the content's long side,
        as the authors load both).
      key: PRNG key (the last pass's sample offsets).
      iters: Adam steps per pass (each scale, and the last pass).
      lr: Adam's learning rate on the pyramid's coefficients.
      alpha: in [0, 1]; 1 searches with the content's features only, lower values mix in
        the current image's (``content_weight = 1 − alpha`` of the authors' code).
      scales: passes coarse to fine (default :func:`scale_count` of the long side).
      flip: also search the style's rotations by 90°, 180° and 270°.
      final_pass: end with the feature-splitting pass at full size.
      colorize: end with the OkLab colour match.
      block: query rows per block of the neighbour search (default: a block of 2**24
        distances).
      callbacks: ``progress(i, loss)`` each step, ``snapshot`` every ``snapshot_every``
        steps, ``should_stop`` after each chunk of steps.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], not {alpha}")
    if int(iters) < 1:
        raise ValueError(f"iters must be at least 1, not {iters}")
    callbacks = callbacks or Callbacks()
    content, style = jnp.asarray(content, jnp.float32), jnp.asarray(style, jnp.float32)
    scales = scales or scale_count(max(content.shape[:2]))
    c_pyr, s_style = _decompose(content, LEVELS), _decompose(style, LEVELS)
    scales = max(1, min(int(scales), len(c_pyr), len(s_style)))
    zeroed = 2 if max(content.shape[:2]) >= 1024 else 3
    pyr = [jnp.zeros_like(x) if i < zeroed else x for i, x in enumerate(c_pyr[:-1])]
    pyr.append(c_pyr[-1])
    history, sizes, stopped = [], [], False
    mix = 1.0 - float(alpha)
    for li, scl in enumerate(range(scales - 1, -1, -1)):
        weight = 0.0 if li == 0 else mix
        target = _scale_target(vgg, c_pyr, pyr, s_style, weight, scl=scl, flip=bool(flip),
                               block=block)
        levels, losses, stopped = _fit(pyr[scl:], _hypercolumn_loss, target, vgg=vgg, lr=lr,
                                       iters=iters, key=key, callbacks=callbacks,
                                       done=len(history))
        history += losses
        image = _synthesize(levels)
        sizes.append(tuple(image.shape[:2]))
        pyr[scl:] = _decompose(image, len(pyr) - 1 - scl)
        if stopped:
            break
    if final_pass and not stopped:
        style_feats = _style_features(vgg, style, flip=bool(flip))
        levels, losses, stopped = _fit(pyr, _splitting_loss, style_feats, vgg=vgg, lr=lr,
                                       iters=iters, key=key, callbacks=callbacks,
                                       done=len(history))
        history += losses
        sizes.append(tuple(content.shape[:2]))
        pyr = levels
    raw = jnp.clip(_synthesize(pyr), 0.0, 1.0)
    if raw.shape != content.shape:                # stopped before the finest scale
        raw = jnp.clip(jax.image.resize(raw, content.shape, "linear"), 0.0, 1.0)
    image = nnst_color_match(content, style, raw) if colorize else raw
    return NNSTResult(image=image, raw=raw, loss=history[-1] if history else float("nan"),
                      history=np.asarray(history, np.float32), n_iter=len(history),
                      stopped=stopped, sizes=tuple(sizes))


def program_memory(content_shape: tuple, style_shape: tuple, *, flip: bool = True,
                   block: int | None = None) -> list[memory.ProgramMemory]:
    """XLA's figures, inputs included, for the finest scale's neighbour search and fit, the
    style's features and the last pass's fit of a ``content_shape`` content (``(H, W)``)
    with a ``style_shape`` style, lowered as :func:`nstjax.nnst` calls them."""
    sds = jax.ShapeDtypeStruct
    vgg = abstract_vgg()
    content = sds(tuple(content_shape) + (3,), jnp.float32)
    style = sds(tuple(style_shape) + (3,), jnp.float32)
    c_pyr = jax.eval_shape(lambda x: decompose(x, LEVELS), content)
    s_pyr = jax.eval_shape(lambda x: decompose(x, LEVELS), style)
    key = jax.eval_shape(lambda: jax.random.PRNGKey(0))
    lr = sds((), jnp.float32)
    found = []

    def figures(fn, *args, **static):
        with warnings.catch_warnings():   # JAX's notes on index dtypes of huge shapes
            warnings.simplefilter("ignore")
            compiled = fn.lower(*args, **static).compile()
        found.append(memory.program_memory(compiled, args=args))

    def fit(levels, data, loss_fn):
        state = jax.eval_shape(lambda x: optax.adam(1e-3).init(x), levels)
        figures(_chunk, levels, state, 0, CHUNK, lr, vgg, data, key,
                loss_fn=loss_fn)

    target_args = (vgg, c_pyr, c_pyr, s_pyr, 0.25)
    figures(_scale_target, *target_args, scl=0, flip=bool(flip), block=block)
    target = jax.eval_shape(lambda *a: _scale_target(
        *a, scl=0, flip=bool(flip), block=block), *target_args)
    fit(c_pyr, target, _hypercolumn_loss)
    figures(_style_features, vgg, style, flip=bool(flip))
    feats = jax.eval_shape(lambda v, s: _style_features(v, s, flip=bool(flip)),
                           vgg, style)
    fit(c_pyr, feats, _splitting_loss)
    return found
