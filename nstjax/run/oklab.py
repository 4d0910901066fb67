"""OkLab and Neural Neighbor Style Transfer's final colour match (Kolkin et al. 2022, §3.3).

The output's lightness is kept; its hue and saturation (OkLab's a, b) are replaced by the
content's, mapped affinely (whitening and colouring, the ZCA of Chiu et al. 2019) to the
style's mean and covariance, then smoothed by a bilateral filter guided by the output's
lightness so that they follow its edges.  A style without chroma (a grey painting) gets
all three channels of the output matched to it instead.  Written from the authors'
``utils/colorization.py`` and ``utils/zca.py``; like theirs, the conversion is applied to
the [0, 1] sRGB values as they are (Ottosson's matrices, without linearising).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_HIGHEST = jax.lax.Precision.HIGHEST
_M1 = jnp.array([[0.4121656120, 0.5362752080, 0.0514575653],
                 [0.2118591070, 0.6807189584, 0.1074065790],
                 [0.0883097947, 0.2818474174, 0.6302613616]])
_M2 = jnp.array([[0.2104542553, 0.7936177850, -0.0040720468],
                 [1.9779984951, -2.4285922050, 0.4505937099],
                 [0.0259040371, 0.7827717662, -0.8086757660]])
_M2_INV = jnp.array([[1.0, 0.3963377774, 0.2158037573],
                     [1.0, -0.1055613458, -0.0638541728],
                     [1.0, -0.0894841775, -1.2914855480]])
_M1_INV = jnp.array([[4.0767245293, -3.3072168827, 0.2307590544],
                     [-1.2681437731, 2.6093323231, -0.3411344290],
                     [-0.0041119885, -0.7034763098, 1.7068625689]])
GREY_CHROMA = 6e-5       # the authors' threshold on the style's a, b covariance
FILTER_PASSES = 5


def rgb_to_oklab(x):
    """``f32[..., 3]`` RGB in [0, 1] (clipped) to OkLab ``L, a, b``."""
    lms = jnp.matmul(jnp.clip(x, 0.0, 1.0), _M1.T, precision=_HIGHEST)
    return jnp.matmul(jnp.cbrt(lms), _M2.T, precision=_HIGHEST)


def oklab_to_rgb(y):
    """:func:`rgb_to_oklab`'s inverse, clipped to [0, 1]."""
    lms = jnp.matmul(y, _M2_INV.T, precision=_HIGHEST) ** 3
    return jnp.clip(jnp.matmul(lms, _M1_INV.T, precision=_HIGHEST), 0.0, 1.0)


def _eigen(cov):
    lam, u = jnp.linalg.eigh(cov + 1e-4 * jnp.eye(cov.shape[0], dtype=cov.dtype))
    return u, jnp.sqrt(jnp.clip(lam, 1e-8, 1e8))


def match_moments(source, target):
    """``source: f32[N, D]`` rows mapped affinely to ``target``'s mean and covariance by
    whitening and colouring (ridge 1e-4, as the authors'); also returns target's
    covariance."""
    mu_s, mu_t = jnp.mean(source, 0), jnp.mean(target, 0)
    xs, xt = source - mu_s, target - mu_t
    cov_s = jnp.matmul(xs.T, xs, precision=_HIGHEST) / xs.shape[0]
    cov_t = jnp.matmul(xt.T, xt, precision=_HIGHEST) / xt.shape[0]
    (us, ss), (ut, st) = _eigen(cov_s), _eigen(cov_t)
    white = jnp.matmul(jnp.matmul(xs, us, precision=_HIGHEST) / ss, us.T, precision=_HIGHEST)
    colored = jnp.matmul(jnp.matmul(white, ut, precision=_HIGHEST) * st, ut.T,
                         precision=_HIGHEST)
    return colored + mu_t, cov_t


def guided_filter_ab(lab, passes: int = FILTER_PASSES):
    """The authors' bilateral smoothing of ``a, b`` in 3×3 windows, weighted by
    ``exp(−5 |ΔL|)²`` of the lightness, ``passes`` times (edge-replicated borders)."""
    h, w = lab.shape[:2]
    pad = lambda x: jnp.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    light = lab[..., :1]
    lp = pad(light)
    shifts = [(i, j) for i in range(3) for j in range(3)]
    weights = [jnp.exp(-5.0 * jnp.abs(light - lp[i:i + h, j:j + w])) ** 2 for i, j in shifts]
    denom = sum(weights)
    ab = lab[..., 1:]
    for _ in range(passes):
        ap = pad(ab)
        ab = sum(wt * ap[i:i + h, j:j + w] for wt, (i, j) in zip(weights, shifts)) / denom
    return jnp.concatenate([light, ab], -1)


def _clamp_to(x, ref):
    lo = jnp.min(ref.reshape(-1, 3), 0)
    hi = jnp.max(ref.reshape(-1, 3), 0)
    return jnp.clip(x, lo, hi)


@jax.jit
def nnst_color_match(content, style, output):
    """NNST's last step (``color_match``): the output's OkLab lightness (within the style's
    range) with the content's chroma moved to the style's colour statistics and filtered
    along the output's edges; all ``f32[H, W, 3]`` RGB in [0, 1] (style any size)."""
    c, s, o = rgb_to_oklab(content), rgb_to_oklab(style), rgb_to_oklab(output)
    flat = lambda x: x.reshape(-1, x.shape[-1])
    x = _clamp_to(o, s)
    _, cov_s = match_moments(flat(x), flat(s))
    grey = jnp.max(jnp.abs(cov_s[1:, 1:])) < GREY_CHROMA
    whole, _ = match_moments(flat(jnp.concatenate([x[..., :1], o[..., 1:]], -1)), flat(s))
    ab, _ = match_moments(flat(c[..., 1:]), flat(s[..., 1:]))
    chroma = guided_filter_ab(jnp.concatenate([x[..., :1], ab.reshape(c.shape[:2] + (2,))], -1))
    out = jnp.where(grey, whole.reshape(o.shape), chroma)
    return oklab_to_rgb(_clamp_to(out, s))
