"""The held-out photo × painting pairs of the quality benchmarks, prepared at a size.

The photos ship with scikit-image (``skimage.data``: public-domain or CC0 pictures, none of
them in ``../shared/images``); the paintings are the classic ones in ``../shared/images``.
Each pair is written once per size as two PNGs (the photo at that long edge, the painting at
the same long edge, as jcjohnson/neural-style scales its style), so that every tool under
test reads exactly the same pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"

# (name, skimage.data photo, painting in ../shared/images)
PAIRS = (
    ("astronaut-starry", "astronaut.png", "starry_night.jpg"),
    ("coffee-matisse", "coffee.png", "woman-with-hat-matisse.jpg"),
    ("chelsea-shipwreck", "chelsea.png", "shipwreck.jpg"),
    ("rocket-picasso", "rocket.jpg", "picasso_selfport1907.jpg"),
    ("motorcycle-nude", "motorcycle_left.png", "seated-nude.jpg"),
    ("coffee-starry", "coffee.png", "starry_night.jpg"),
)


def photo_path(name: str) -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / name


def _resized(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w, h = img.size
    scale = size / max(w, h)
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
    return np.asarray(img)


def prepare(size: int, folder: Path, names=None) -> list[tuple[str, Path, Path]]:
    """``[(pair, content.png, style.png)]`` at long edge ``size`` under ``folder``."""
    from PIL import Image

    if not SHARED_IMAGES.is_dir():
        raise SystemExit(f"the paintings are read from {SHARED_IMAGES}, which is absent")
    out = []
    for name, photo, painting in PAIRS:
        if names and name not in names:
            continue
        d = Path(folder) / f"{size}" / name
        d.mkdir(parents=True, exist_ok=True)
        c, s = d / "content.png", d / "style.png"
        if not c.exists():
            Image.fromarray(_resized(photo_path(photo), size)).save(c)
        if not s.exists():
            Image.fromarray(_resized(SHARED_IMAGES / painting, size)).save(s)
        out.append((name, c, s))
    return out
