"""Quality measures of the benchmarks that no nstjax loss optimises.

* :func:`patch_distance`: how far an image's *pixel patches* are from the painting's, relative
  to the photo's: the sliced 2-Wasserstein distance between the distributions of 5×5 RGB
  patches (75-dimensional) at two scales (full size and half size), over 64 fixed random
  directions, each 1-D distance by quantile matching on 256 quantiles (Rabin et al. 2011).
  It sees colours and local strokes directly, with no network at all, so it flatters neither
  the Gram loss nor the VGG-feature distances of ``nstjax score``.  1 = as far as the photo,
  0 = the painting's patch statistics.
* :func:`speckle`: single-pixel colour speckle, the energy of the chroma (BT.601 Cb and Cr)
  above a Gaussian blur of σ = 1 px, divided by the painting's at the same size.  A painting's
  own fine colour texture is 1.
"""

from __future__ import annotations

import numpy as np

PATCH = 5
DIRECTIONS = 64
QUANTILES = 256
SEED = 20261206


def _patches(image: np.ndarray, stride: int) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    w = sliding_window_view(image, (PATCH, PATCH, 3))[::stride, ::stride, 0]
    return w.reshape(-1, PATCH * PATCH * 3)


def _half(image: np.ndarray) -> np.ndarray:
    h, w = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    x = image[:h, :w]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def _quantiles(p: np.ndarray, directions: np.ndarray) -> np.ndarray:
    proj = p @ directions                       # [n, K]
    t = (np.arange(QUANTILES) + 0.5) / QUANTILES
    return np.quantile(proj, t, axis=0)          # [Q, K]


def _sw(a: np.ndarray, b: np.ndarray, directions) -> float:
    return float(np.sqrt(np.mean((_quantiles(a, directions) - _quantiles(b, directions)) ** 2)))


def _directions() -> np.ndarray:
    d = np.random.default_rng(SEED).standard_normal((PATCH * PATCH * 3, DIRECTIONS))
    return d / np.linalg.norm(d, axis=0, keepdims=True)


def patch_distance(image, content, style) -> float:
    """Mean over the two scales of ``SW(image, style) / SW(content, style)`` (see above)."""
    d = _directions()
    out = []
    for scale in (0, 1):
        im, c, s = (np.asarray(x, np.float64) for x in (image, content, style))
        for _ in range(scale):
            im, c, s = _half(im), _half(c), _half(s)
        stride = 2 if scale == 0 else 1
        pi, pc, ps = _patches(im, stride), _patches(c, stride), _patches(s, stride)
        out.append(_sw(pi, ps, d) / max(_sw(pc, ps, d), 1e-12))
    return float(np.mean(out))


def _chroma(image: np.ndarray) -> np.ndarray:
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    return np.stack([cb, cr], -1)


def _fine_energy(image: np.ndarray) -> float:
    from scipy.ndimage import gaussian_filter

    c = _chroma(np.asarray(image, np.float64))
    blurred = np.stack([gaussian_filter(c[..., k], 1.0, mode="reflect") for k in range(2)], -1)
    return float(np.mean((c - blurred) ** 2))


def speckle(image, style) -> float:
    """Chroma energy above a σ = 1 px blur, relative to the painting's (``style`` resized to
    the image's size by the caller)."""
    return _fine_energy(image) / max(_fine_energy(style), 1e-12)
