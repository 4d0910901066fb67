"""Demo inputs made on the spot, so the first command needs no files from the user.

``demo_content`` is a small landscape (sky, sun, hills, a house, a lake); ``demo_style`` a
swirling, high-contrast "painting" of strokes in a Van-Gogh-like palette.  Both are
deterministic functions of their size and seed.
"""

from __future__ import annotations

import numpy as np


def _grid(h, w):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return y / max(h - 1, 1), x / max(w - 1, 1)


def demo_content(h: int = 192, w: int = 256) -> np.ndarray:
    """A landscape photo stand-in, ``f32[h, w, 3]`` in [0, 1]."""
    y, x = _grid(h, w)
    sky = np.stack([0.45 + 0.3 * y, 0.65 + 0.2 * y, 0.95 - 0.1 * y], -1)
    img = sky.copy()
    sun = (x - 0.8) ** 2 + ((y - 0.2) * h / w) ** 2 < 0.006
    img[sun] = (1.0, 0.92, 0.55)
    hill1 = y > 0.55 + 0.08 * np.sin(6.0 * x + 0.5)
    hill2 = y > 0.62 + 0.05 * np.sin(11.0 * x + 2.0)
    img[hill1] = np.stack([0.25 + 0.1 * x, 0.5 + 0.1 * y, 0.2 + 0 * x], -1)[hill1]
    img[hill2] = np.stack([0.15 + 0 * x, 0.38 + 0.15 * y, 0.12 + 0 * x], -1)[hill2]
    lake = (y > 0.8) & (np.abs(x - 0.35) < 0.25 - 0.5 * (y - 0.8))
    img[lake] = np.stack([0.2 + 0 * x, 0.35 + 0 * x, 0.6 + 0.1 * np.sin(80 * y)], -1)[lake]
    wall = (x > 0.15) & (x < 0.32) & (y > 0.48) & (y < 0.68)
    img[wall] = (0.85, 0.8, 0.7)
    roof = (y <= 0.48) & (y > 0.38) & (np.abs(x - 0.235) < (y - 0.38) * 1.0)
    img[roof] = (0.6, 0.15, 0.1)
    door = (x > 0.21) & (x < 0.255) & (y > 0.58) & (y < 0.68)
    img[door] = (0.35, 0.2, 0.1)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def demo_style(h: int = 256, w: int = 256, *, seed: int = 0) -> np.ndarray:
    """A swirling painting stand-in, ``f32[h, w, 3]`` in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = _grid(h, w)
    field = np.zeros_like(x)
    for _ in range(6):
        cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.4)
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        field += np.exp(-(d / r) ** 2) * np.arctan2(y - cy, x - cx) * rng.choice([-1, 1])
    strokes = np.sin(40.0 * (x * np.cos(field) + y * np.sin(field)) + 3.0 * field)
    grain = rng.normal(0, 0.08, size=(h // 4 + 1, w // 4 + 1)).repeat(4, 0).repeat(4, 1)[:h, :w]
    t = 0.5 + 0.5 * np.tanh(1.5 * strokes + grain)
    deep = np.array([0.05, 0.12, 0.35])
    mid = np.array([0.15, 0.45, 0.75])
    gold = np.array([0.98, 0.85, 0.25])
    band = 0.5 + 0.5 * np.sin(5.0 * field)
    img = (1 - t)[..., None] * deep + t[..., None] * (band[..., None] * gold + (1 - band[..., None]) * mid)
    return np.clip(img, 0.0, 1.0).astype(np.float32)
