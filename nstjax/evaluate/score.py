"""A score that no loss optimises: how stylised, and how faithful, an output is.

Each style measure compares the VGG19 feature distribution of an image with the style's at
:data:`STYLE_LAYERS` (``relu1_1`` ... ``relu5_1``), per layer, and is reported RELATIVE to the
content photo's own distance to the style::

    relative(layer) = d(image, style; layer) / d(content, style; layer)
    score           = mean over the five layers of relative(layer)

so 1 means "as unstylised as the content photo" and 0 means "the style's feature
statistics".  Values above 1 are possible (further from the style than the photo).  A layer
where the content already matches the style (``d(content, style) = 0``) has no relative
distance: it is NaN, and so is the mean (JSON ``null``).  Features ``F`` are an image's
activations at one layer as an ``N × C`` matrix (``N`` positions, ``C`` channels); an image
and the style may have different ``N``.

Style measures:

* **Sliced Wasserstein** (``sliced_wasserstein``):
  ``SW(X, Y) = sqrt(mean_k W2²(X θ_k, Y θ_k))`` over :data:`N_PROJECTIONS` unit directions
  ``θ_k`` per layer, drawn once from ``PRNGKey(SW_SEED)`` folded with the layer's index — a
  fixed seed of this module, independent of every key a loss or an optimiser uses.  ``W2``
  of two 1-D empirical distributions of different sizes ``n`` and ``m`` is computed exactly
  by quantile matching: ``∫₀¹ (q_X(t) − q_Y(t))² dt`` with the step quantile functions of the
  sorted projections, integrated over the merged breakpoints ``{i/n} ∪ {j/m}`` (found in
  integer arithmetic, so duplicating every sample leaves the distance exactly unchanged).
* **Gram** (``gram``): ``‖G(X) − G(Y)‖_F`` with ``G(F) = Fᵀ F / N`` (normalised per
  position).
* **Mean/covariance** (``mean_cov``): the 2-Wasserstein distance of the Gaussians with the
  features' means ``μ`` and (population) covariances ``Σ``:
  ``sqrt(‖μ_X − μ_Y‖² + tr Σ_X + tr Σ_Y − 2 tr (Σ_Y^½ Σ_X Σ_Y^½)^½)`` (Fréchet distance),
  matrix square roots by symmetric eigendecomposition, negative round-off clipped to 0.
  The moments are computed on the device (float32 sums at the highest matmul precision);
  this last step runs in float64 on the host, where round-off leaves no floor.

Content measures (the image and the content at the same size; when they differ, the image
is resized to the content's size for these two, and :attr:`ScoreResult.resized` says so):

* **relu4_2 relative error** (``content_error``): ``‖F(image) − F(content)‖_F /
  ‖F(content)‖_F`` at ``relu4_2``; 0 for the content itself.
* **SSIM of the luminance** (``ssim``): :func:`skimage.metrics.structural_similarity` of
  Rec. 601 luma ``Y = 0.299 R + 0.587 G + 0.114 B`` with ``data_range=1`` (its default 7×7
  window); 1 for the content itself.

No single measure is neutral: each one flatters the loss that optimises the same statistic.

=====================  =====================================================================
measure                flatters
=====================  =====================================================================
``sliced_wasserstein`` ``sliced-wasserstein`` (its own random directions, not these), and
                       less so ``histogram`` (per-channel marginals: the axis directions)
``gram``               ``gram`` and its variants (``gram-gamma``, ``gram-hw``, ``gram-chw``),
                       ``mmd-poly``/``mmd-linear`` (kernel forms of the same second moments)
``mean_cov``           ``gaussian-w2`` and ``bn`` (``bn`` matches means and variances, a part
                       of the same statistics), ``stats``/``moments``/``cmd`` in part
``content_error``      the default content loss (``relu4_2`` squared error)
``ssim``               none of nstjax's losses (it is computed on pixels, not on features)
=====================  =====================================================================

Each image's features are computed once, in one compiled function per image shape (plus a
``relu4_2``-only pass of the resized copy when its size differs from the content's); the
style's and the content's statistics are computed once per call.  Sizes are the caller's:
each image is measured at its own size, the style at its own size (``nstjax score`` loads the
content at each image's size).

References:
  Rabin et al. (2011), "Wasserstein barycenter and its application to texture mixing"
  (sliced Wasserstein); Gatys et al. (2016) (Gram matrices); Dowson & Landau (1982), Heusel
  et al. (2017) (Fréchet distance of Gaussians); Wang et al. (2004) (SSIM).
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.io.image_arrays import check_image_array
from nstjax.model.layers import VGGWeights
from nstjax.model.vgg import LAYER_INDEX, extract_features

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
STYLE_MEASURES = ("sliced_wasserstein", "gram", "mean_cov")
N_PROJECTIONS = 128
SW_SEED = 20_160_627          # this module's own: no loss, optimiser or test draws from it
_HI = jax.lax.Precision.HIGHEST      # no TF32/bf16 passes in the statistics on GPUs


class ScoreResult(NamedTuple):
    """One image's scores (every number a Python float).

    Attributes:
      style: ``{measure: relative distance}`` for :data:`STYLE_MEASURES`, each the mean over
        :data:`STYLE_LAYERS` of ``d(image, style) / d(content, style)`` (1 = the content,
        0 = the style).
      style_per_layer: ``{measure: {layer: relative distance}}``.
      content_error: ``‖F(image) − F(content)‖ / ‖F(content)‖`` at ``relu4_2``.
      ssim: SSIM of the Rec. 601 luminance against the content's, ``data_range=1``.
      shape: the image's ``(H, W)`` as measured for the style measures.
      resized: True when the image was resized to the content's size for the content
        measures (the two sizes differed).
    """

    style: dict
    style_per_layer: dict
    content_error: float
    ssim: float
    shape: tuple
    resized: bool


# --------------------------------------------------------------------------- pieces


def projections(channels: int, layer: str) -> np.ndarray:
    """The fixed unit directions of a layer, ``f32[channels, N_PROJECTIONS]`` (columns)."""
    return _projections(channels, LAYER_INDEX[layer])


@functools.lru_cache(maxsize=None)
def _projections(channels: int, index: int) -> np.ndarray:
    with jax.ensure_compile_time_eval():        # a constant, also when called under jit
        key = jax.random.fold_in(jax.random.PRNGKey(SW_SEED), index)
        theta = np.asarray(jax.random.normal(key, (channels, N_PROJECTIONS), jnp.float32),
                           np.float64)
    theta = (theta / np.linalg.norm(theta, axis=0, keepdims=True)).astype(np.float32)
    theta.setflags(write=False)                 # cached: shared by every caller
    return theta


@functools.lru_cache(maxsize=16)
def _quantile_coupling(n: int, m: int):
    """Widths and indices of the merged breakpoints ``{i/n} ∪ {j/m}`` (exact, integers).

    On each interval between consecutive breakpoints both step quantile functions are
    constant: ``q_X = x[i]``, ``q_Y = y[j]``; the intervals' widths sum to 1.
    """
    ends = np.sort(np.concatenate([np.arange(1, n + 1, dtype=np.int64) * m,
                                   np.arange(1, m + 1, dtype=np.int64) * n]))  # × 1/(n m)
    starts = np.concatenate([[0], ends[:-1]])
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    mid2 = starts + ends                                   # 2 × midpoint × n m
    i = np.minimum(mid2 // (2 * m), n - 1).astype(np.int32)
    j = np.minimum(mid2 // (2 * n), m - 1).astype(np.int32)
    width = ((ends - starts) / (float(n) * float(m))).astype(np.float32)
    for a in (width, i, j):
        a.setflags(write=False)                 # cached: shared by every caller
    return width, i, j


def wasserstein2_sorted(x_sorted, y_sorted):
    """Squared 1-D 2-Wasserstein distances of empirical distributions, per column.

    Args:
      x_sorted: ``f32[n, K]``, each column sorted ascending.
      y_sorted: ``f32[m, K]``, each column sorted ascending (``m`` may differ from ``n``).

    Returns:
      ``f32[K]``: ``∫₀¹ (q_x(t) − q_y(t))² dt`` per column (exact quantile matching).
    """
    width, i, j = _quantile_coupling(x_sorted.shape[0], y_sorted.shape[0])
    width, i, j = jnp.asarray(width), jnp.asarray(i), jnp.asarray(j)

    def one(cols):
        xc, yc = cols
        return jnp.sum(width * (xc[i] - yc[j]) ** 2)

    return jax.lax.map(one, (x_sorted.T, y_sorted.T))


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def gaussian_w2(mean_a, cov_a, mean_b, cov_b, *, cov_b_sqrt=None) -> float:
    """2-Wasserstein (Fréchet) distance of two Gaussians, in float64 on the host.

    ``sqrt(‖μ_a − μ_b‖² + tr Σ_a + tr Σ_b − 2 tr (Σ_b^½ Σ_a Σ_b^½)^½)``; float32
    eigendecompositions would leave a floor of about ``sqrt(eps) λ_max`` per near-zero
    eigenvalue (deep layers have fewer positions than channels, so many), hence float64.
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    root = _sqrtm_psd(cov_b) if cov_b_sqrt is None else cov_b_sqrt
    cross = root @ cov_a @ root
    cross_trace = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((cross + cross.T) / 2), 0.0, None)))
    w2 = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross_trace
    return float(np.sqrt(max(w2, 0.0)))


def _layer_stats(f, layer):
    """Everything the style measures need of one layer's features ``f32[h, w, C]``."""
    f = f.reshape(-1, f.shape[-1])
    n = jnp.float32(f.shape[0])
    mean = jnp.sum(f, axis=0) / n
    centred = f - mean
    return {"sorted": jnp.sort(jnp.matmul(f, projections(f.shape[-1], layer), precision=_HI),
                               axis=0),
            "gram": jnp.matmul(f.T, f, precision=_HI) / n,
            "mean": mean, "cov": jnp.matmul(centred.T, centred, precision=_HI) / n}


def _layer_distances(a, s):
    """``f32[2]``: the SW and Gram distances of stats ``a`` to the style's ``s``."""
    sw = jnp.sqrt(jnp.mean(wasserstein2_sorted(a["sorted"], s["sorted"])))
    gram = jnp.sqrt(jnp.sum((a["gram"] - s["gram"]) ** 2))
    return jnp.stack([sw, gram])


@jax.jit
def _style_stats(vgg: VGGWeights, image):
    feats = extract_features(vgg, image, STYLE_LAYERS)
    return {layer: _layer_stats(feats[layer], layer) for layer in STYLE_LAYERS}


@jax.jit
def _measure(vgg: VGGWeights, image, style_stats):
    """One image, one compiled pass: ``(f32[2, layers] SW and Gram distances, {layer:
    (mean, cov)}, relu4_2 features)``."""
    feats = extract_features(vgg, image, STYLE_LAYERS + (CONTENT_LAYER,))
    stats = {layer: _layer_stats(feats[layer], layer) for layer in STYLE_LAYERS}
    d = jnp.stack([_layer_distances(stats[layer], style_stats[layer])
                   for layer in STYLE_LAYERS], axis=1)
    return d, {k: (v["mean"], v["cov"]) for k, v in stats.items()}, feats[CONTENT_LAYER]


def _distances(measured, style_moments) -> np.ndarray:
    """``f64[3, layers]``: SW, Gram (from the device) and mean/cov (float64, here)."""
    d, moments, _ = measured
    gauss = [gaussian_w2(*moments[layer], *style_moments[layer][:2],
                         cov_b_sqrt=style_moments[layer][2]) for layer in STYLE_LAYERS]
    return np.concatenate([np.asarray(d, np.float64), np.asarray([gauss])], axis=0)


def luminance(image) -> np.ndarray:
    """Rec. 601 luma of RGB in [0, 1]: ``f64[H, W]``."""
    return np.asarray(image, np.float64) @ np.array([0.299, 0.587, 0.114])


def ssim_luminance(image, reference) -> float:
    """SSIM (scikit-image, ``data_range=1``) of the two images' Rec. 601 luminance."""
    from skimage.metrics import structural_similarity
    return float(structural_similarity(luminance(image), luminance(reference), data_range=1.0))


def _relative(d, d_content):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d_content > 0, d / np.where(d_content > 0, d_content, 1.0), np.nan)


def _as_image(x, what):
    return check_image_array(x, what)


# ----------------------------------------------------------------------------- score


def score(vgg: VGGWeights, content, style, images: Sequence) -> list[ScoreResult]:
    """Score images for style (relative to the content's distance) and content fidelity.

    Args:
      vgg: the network (:func:`nstjax.load_vgg19`; a tiny random one for tests).
      content: RGB in [0, 1], ``f32[H, W, 3]``: the photo the images were made from.
      style: RGB in [0, 1], ``f32[Hs, Ws, 3]``, measured at its own size.
      images: RGB images in [0, 1], ``f32[h, w, 3]`` each, measured at their own sizes (and
        resized to the content's size for the content measures when sizes differ).

    Returns:
      One :class:`ScoreResult` per image, in order; the module docstring defines every
      number.  The projections of the sliced Wasserstein distance are fixed
      (:data:`SW_SEED`), so no key is taken: a score is a function of its images alone.
    """
    content, style = _as_image(content, "content"), _as_image(style, "style")
    images = [_as_image(im, f"images[{k}]") for k, im in enumerate(images)]
    if not images:
        raise ValueError("no images to score")
    s_stats = _style_stats(vgg, style)
    s_moments = {}
    for layer in STYLE_LAYERS:
        cov = np.asarray(s_stats[layer]["cov"], np.float64)
        s_moments[layer] = (np.asarray(s_stats[layer]["mean"], np.float64), cov,
                            _sqrtm_psd(cov))
    measured = _measure(vgg, content, s_stats)
    d_content = _distances(measured, s_moments)
    f_content = np.asarray(measured[2], np.float64)
    content_norm = np.linalg.norm(f_content)
    results = []
    for image in images:
        measured = _measure(vgg, image, s_stats)
        rel = _relative(_distances(measured, s_moments), d_content)      # [measure, layer]
        f, same = measured[2], image
        resized = image.shape != content.shape
        if resized:
            same = jnp.clip(jax.image.resize(image, content.shape, "linear", antialias=True),
                            0.0, 1.0)
            f = extract_features(vgg, same, [CONTENT_LAYER])[CONTENT_LAYER]
        error = np.linalg.norm(np.asarray(f, np.float64) - f_content)
        results.append(ScoreResult(
            style={m: float(np.mean(rel[k])) for k, m in enumerate(STYLE_MEASURES)},
            style_per_layer={m: {layer: float(rel[k, i]) for i, layer in enumerate(STYLE_LAYERS)}
                             for k, m in enumerate(STYLE_MEASURES)},
            content_error=float(error / content_norm) if content_norm > 0 else float("nan"),
            ssim=ssim_luminance(same, content),
            shape=tuple(int(v) for v in image.shape[:2]), resized=bool(resized)))
    return results
