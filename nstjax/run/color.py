"""Colour control (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style
Transfer", §5): luminance-only transfer and colour histogram matching.  Pure JAX.

* **Luminance-only transfer** (§5.2): the transfer runs on luminance images (the Y of YIQ,
  or of YUV, repeated into three channels for VGG), the style's luminance first matched to
  the content's mean and standard deviation, ``L_s' = σ_c/σ_s (L_s − μ_s) + μ_c``; the
  result's luminance is then recombined with the content's chroma (I, Q), which is kept
  exactly: where ``Y + chroma`` would leave the RGB cube, ``Y`` is clamped to the
  interval that keeps it inside, so clipping never alters a hue.
* **Colour histogram matching** (§5.1): the style's pixels are mapped linearly,
  ``x' = A x + b`` with ``b = μ_c − A μ_s`` and ``A Σ_s Aᵀ = Σ_c``, so their mean and
  covariance equal the content's; ``A = L_c L_s⁻¹`` from Cholesky factors, or the
  symmetric "image analogies" map ``A = Σ_c^½ Σ_s^−½`` (Hertzmann et al. 2001) from
  eigendecompositions.
* **Colour only** (the reverse): the content's pixels mapped onto the style's colour mean
  and covariance, no optimisation.

:func:`prepare_inputs` and :func:`finish_output` wrap a transfer (``stylize``, or a
coarse-to-fine ladder) in either mode; everything else is a pure function of arrays.

References:
  Gatys, Ecker, Bethge, Hertzmann, Shechtman, "Controlling Perceptual Factors in Neural
  Style Transfer", CVPR 2017, §5.1 (colour histogram matching), §5.2 (luminance-only
  transfer).
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

PRESERVE_COLORS = ("luminance", "histogram")
COLOR_SPACES = ("yiq", "yuv")
MATCH_METHODS = ("cholesky", "eigen")

_Y = (0.299, 0.587, 0.114)                 # BT.601 luma, the Y of both spaces
# RGB -> (Y, chroma 1, chroma 2), as rows.  YUV: U = 0.492 (B − Y), V = 0.877 (R − Y);
# YIQ: (I, Q) is (V, U) turned by 33° (NTSC, FCC 1953).  Chroma rows sum to 0: grey has none.
_U = tuple(0.492 * (b - y) for b, y in zip((0, 0, 1), _Y))
_V = tuple(0.877 * (r - y) for r, y in zip((1, 0, 0), _Y))
_C, _S = np.cos(np.deg2rad(33.0)), np.sin(np.deg2rad(33.0))
_RGB_TO = {
    "yuv": (_Y, _U, _V),
    "yiq": (_Y, tuple(_C * v - _S * u for u, v in zip(_U, _V)),
            tuple(_S * v + _C * u for u, v in zip(_U, _V))),
}
_RIDGE = 1e-6        # relative ridge on covariances (a flat image has a singular one)


def _matrices(space: str):
    if space not in COLOR_SPACES:
        raise ValueError(f"colour space must be one of {', '.join(COLOR_SPACES)}, not {space!r}")
    m = np.asarray(_RGB_TO[space], np.float64)
    return jnp.asarray(m, jnp.float32), jnp.asarray(np.linalg.inv(m), jnp.float32)


def rgb_to_luma_chroma(image, *, space: str = "yiq"):
    """``f32[..., 3]`` RGB to ``f32[..., 3]`` (Y, chroma, chroma) in YIQ or YUV."""
    m, _ = _matrices(space)
    return jnp.asarray(image, jnp.float32) @ m.T


def luma_chroma_to_rgb(ycc, *, space: str = "yiq"):
    """Inverse of :func:`rgb_to_luma_chroma` (no clipping)."""
    _, inv = _matrices(space)
    return jnp.asarray(ycc, jnp.float32) @ inv.T


def luminance(image, *, space: str = "yiq"):
    """``f32[H, W]``: the Y channel of an RGB image (the same in YIQ and YUV)."""
    return rgb_to_luma_chroma(image, space=space)[..., 0]


def luminance_image(image, *, space: str = "yiq"):
    """``f32[H, W, 3]``: the luminance of ``image`` repeated in three channels (grey RGB),
    what VGG sees in a luminance-only transfer (Gatys 2017 §5.2)."""
    y = luminance(image, space=space)
    return jnp.repeat(y[..., None], 3, axis=-1)


def match_luminance(style, content, *, space: str = "yiq"):
    """The style's luminance matched to the content's mean and standard deviation.

    ``L_s' = σ_c/σ_s (L_s − μ_s) + μ_c`` (Gatys 2017 §5.2).

    Returns:
      ``f32[H_s, W_s]``.
    """
    ls, lc = luminance(style, space=space), luminance(content, space=space)
    return (lc.std() / jnp.maximum(ls.std(), 1e-6)) * (ls - ls.mean()) + lc.mean()


def combine_luminance(luma, content, *, space: str = "yiq"):
    """RGB with the luminance ``luma`` and the chroma of ``content``, kept exactly.

    For a pixel with chroma ``(c1, c2)`` the RGB is ``Y·1 + d`` with ``d`` fixed by the
    chroma, so it lies in [0, 1]³ exactly when ``Y ∈ [−min d, 1 − max d]``; ``Y`` is clamped
    to that interval (never empty, since the content's own pixel lies in it), so the
    result is inside the RGB cube and its chroma is the content's, to float rounding.

    Args:
      luma: ``f32[H, W]`` luminance, or ``f32[H, W, 3]`` RGB whose luminance is taken.
      content: ``f32[H, W, 3]`` RGB in [0, 1] giving the chroma.

    Returns:
      ``f32[H, W, 3]`` RGB in [0, 1] (up to float rounding).
    """
    if luma.ndim == 3:
        luma = luminance(luma, space=space)
    ycc = rgb_to_luma_chroma(content, space=space)
    chroma_only = luma_chroma_to_rgb(ycc.at[..., 0].set(0.0), space=space)   # d
    lo = -chroma_only.min(axis=-1)
    hi = 1.0 - chroma_only.max(axis=-1)
    y = jnp.clip(luma, lo, jnp.maximum(hi, lo))
    return jnp.clip(luma_chroma_to_rgb(ycc.at[..., 0].set(y), space=space), 0.0, 1.0)


def color_statistics(image):
    """``(μ f32[3], Σ f32[3, 3])``: mean and (biased) covariance of an image's pixels."""
    x = jnp.reshape(jnp.asarray(image, jnp.float32), (-1, 3))
    mu = x.mean(axis=0)
    d = x - mu
    return mu, d.T @ d / x.shape[0]


def _ridged(cov):
    """``Σ + εI`` with ``ε`` = 1e-6 of the mean variance (and at least 1e-12): a flat image
    stays invertible, and ``A Σ_s Aᵀ`` is off ``Σ_t`` by about ε relative, not absolute."""
    eps = _RIDGE * jnp.maximum(jnp.trace(cov) / 3.0, 1e-6)
    return cov + eps * jnp.eye(3, dtype=cov.dtype)


def _sqrt_and_inverse_sqrt(cov):
    w, v = jnp.linalg.eigh(cov)
    w = jnp.maximum(w, 1e-12)
    return (v * jnp.sqrt(w)) @ v.T, (v / jnp.sqrt(w)) @ v.T


def color_transform(source, target, *, method: str = "cholesky"):
    """``(A f32[3, 3], b f32[3])`` with ``A x + b`` taking ``source``'s pixel mean and
    covariance to ``target``'s (Gatys 2017 §5.1).

    ``A Σ_s Aᵀ = Σ_t`` and ``b = μ_t − A μ_s``; ``method="cholesky"``: ``A = L_t L_s⁻¹``;
    ``"eigen"``: ``A = Σ_t^½ Σ_s^−½`` (the image analogies colour transfer).  Covariances get
    a relative ridge of 1e-6 so a flat image is no error.
    """
    mu_s, cov_s = color_statistics(source)
    mu_t, cov_t = color_statistics(target)
    cov_s, cov_t = _ridged(cov_s), _ridged(cov_t)
    if method == "cholesky":
        l_s = jnp.linalg.cholesky(cov_s)
        l_t = jnp.linalg.cholesky(cov_t)
        a = l_t @ jnp.linalg.inv(l_s)
    elif method == "eigen":
        sqrt_t, _ = _sqrt_and_inverse_sqrt(cov_t)
        _, inv_sqrt_s = _sqrt_and_inverse_sqrt(cov_s)
        a = sqrt_t @ inv_sqrt_s
    else:
        raise ValueError(f"colour matching method must be one of {', '.join(MATCH_METHODS)}, "
                         f"not {method!r}")
    return a, mu_t - a @ mu_s


def match_color(source, target, *, method: str = "cholesky", clip: bool = False):
    """``source`` recoloured so its pixels' mean and covariance are ``target``'s.

    Args:
      source: ``f32[H, W, 3]`` the image to recolour (the style, for
        ``--preserve-color histogram``; the content, for ``--transfer-color-only``).
      target: ``f32[H', W', 3]`` whose colour statistics are matched.
      method: ``"cholesky"`` or ``"eigen"`` (see :func:`color_transform`).
      clip: clip the result to [0, 1] (which changes its statistics slightly); VGG takes
        values outside, so a style image need not be clipped.

    Returns:
      ``f32[H, W, 3]``.
    """
    a, b = color_transform(source, target, method=method)
    out = jnp.asarray(source, jnp.float32) @ a.T + b
    return jnp.clip(out, 0.0, 1.0) if clip else out


def prepare_inputs(content, styles: Sequence, *, preserve: str | None,
                   space: str = "yiq", method: str = "cholesky"):
    """The images a colour-preserving transfer optimises: ``(content', [styles'])``.

    ``None``: unchanged.  ``"histogram"``: each style recoloured to the content's colour
    statistics (§5.1), clipped to [0, 1] (a picture the network can see; a style far from
    the content's colours overshoots the box).  ``"luminance"``: the content's and the styles' luminance images,
    each style's luminance first matched to the content's (§5.2); give the result to
    :func:`finish_output`.
    """
    if preserve is None:
        return content, list(styles)
    if preserve == "histogram":
        return content, [match_color(s, content, method=method, clip=True) for s in styles]
    if preserve == "luminance":
        grey = lambda y: jnp.repeat(y[..., None], 3, axis=-1)  # noqa: E731
        return (luminance_image(content, space=space),
                [grey(match_luminance(s, content, space=space)) for s in styles])
    raise ValueError(f"preserve-color must be one of {', '.join(PRESERVE_COLORS)}, "
                     f"not {preserve!r}")


def finish_output(image, content, *, preserve: str | None, space: str = "yiq"):
    """The transfer's result as the final RGB: with ``"luminance"``, its luminance with the
    content's chroma (:func:`combine_luminance`); otherwise unchanged."""
    if preserve == "luminance":
        return combine_luminance(image, content, space=space)
    return image


def preserving_callbacks(callbacks, content, *, preserve: str | None):
    """``callbacks`` whose snapshots of full-size iterates are :func:`finish_output`'s RGB
    (a coarse rung's snapshot, of another shape, is passed on as it is)."""
    if callbacks is None or callbacks.snapshot is None or preserve != "luminance":
        return callbacks
    user = callbacks.snapshot

    def snapshot(i, x):
        if tuple(x.shape) == tuple(content.shape):
            x = finish_output(x, content, preserve=preserve)
        return user(i, x)

    return callbacks._replace(snapshot=snapshot)


def with_color_control(solve, content, styles, init, callbacks, *, preserve: str,
                       method: str = "cholesky"):
    """Run ``solve(content', styles', init', callbacks')`` on the images a colour-preserving
    transfer optimises (:func:`prepare_inputs`) and return its result with the final RGB
    image (:func:`finish_output`); snapshots of full-size iterates are final RGB too.

    The one place every driver (``stylize``, ``stylize_multiscale``, ``stylize_tiled``)
    gets colour control from; ``result`` is any named tuple with an ``image`` field.
    """
    content = jnp.asarray(content, jnp.float32)
    content_run, styles_run = prepare_inputs(content, styles, preserve=preserve, method=method)
    result = solve(content_run, styles_run, preserving_start(init, preserve=preserve),
                   preserving_callbacks(callbacks, content, preserve=preserve))
    return result._replace(image=finish_output(result.image, content, preserve=preserve))


def preserving_start(init, *, preserve: str | None):
    """The start image of a colour-preserving transfer: a given image's luminance image
    under ``"luminance"``; a named start (``"content"``, ...) unchanged."""
    if preserve == "luminance" and not isinstance(init, str):
        return luminance_image(init)
    return init
