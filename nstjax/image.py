"""Image files in and out: RGB float32 in [0, 1], resizing, atomic writes.

Everything here is host-side (NumPy and Pillow); the JAX core never touches files.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

MIN_SIZE = 16


class ImageError(ValueError):
    """An image file is missing, unreadable or unsuitable."""


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert any Pillow image (L, LA, P, RGBA, I;16, I, F, CMYK, ...) to RGB float32 [0, 1].

    Transparency is composited over white; 16-bit and 32-bit integer images are scaled by
    their bit depth, float images are clipped to [0, 1].
    """
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        a = np.asarray(img, dtype=np.float32) / 65535.0
        rgb = np.repeat(a[..., None], 3, axis=-1)
    elif mode == "I":
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if a.max(initial=0) <= 65535 else 2.0 ** 31 - 1
        rgb = np.repeat((a / top).astype(np.float32)[..., None], 3, axis=-1)
    elif mode == "F":
        a = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
        rgb = np.repeat(a[..., None], 3, axis=-1)
    else:
        if mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
            img = img.convert("RGBA")
            white = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(white, img)
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(np.clip(rgb, 0.0, 1.0), dtype=np.float32)


def resize_long_edge(img: Image.Image, size: int | None) -> Image.Image:
    """Resize so the longer edge is ``size`` pixels (aspect kept); None keeps the size."""
    if size is None:
        return img
    w, h = img.size
    scale = size / max(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    if min(new) < MIN_SIZE:
        raise ImageError(f"resizing {w}×{h} to long edge {size} gives {new[0]}×{new[1]}, "
                         f"below the {MIN_SIZE}-pixel minimum")
    return img.resize(new, Image.Resampling.LANCZOS) if new != (w, h) else img


def load_image(path, *, size: int | None = None, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image file as RGB float32 in [0, 1], ``f32[H, W, 3]``.

    Args:
      path: any format Pillow reads.
      size: resize so the long edge has this many pixels.
      shape: resize to exactly ``(H, W)`` (overrides ``size``).

    Raises:
      ImageError: with a one-line reason, for a missing, unreadable or tiny image.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    try:
        with Image.open(path) as img:
            img.load()
            if shape is not None:
                if min(shape) < MIN_SIZE:
                    raise ImageError(f"size {shape[1]}×{shape[0]} is below {MIN_SIZE} pixels")
                img = _resize_exact(img, shape)
            else:
                img = resize_long_edge(img, size)
            arr = to_rgb_array(img)
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: not a readable image ({type(e).__name__})") from e
    if min(arr.shape[:2]) < MIN_SIZE:
        raise ImageError(f"{path}: {arr.shape[1]}×{arr.shape[0]} is below {MIN_SIZE} pixels")
    return arr


def _resize_exact(img: Image.Image, shape):
    h, w = shape
    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = Image.fromarray((to_rgb_array(img) * 255.0 + 0.5).astype(np.uint8))
    return img.resize((w, h), Image.Resampling.LANCZOS)


def to_uint8(image) -> np.ndarray:
    """RGB in [0, 1] (any array) to ``uint8[H, W, 3]``, rounded and clipped."""
    a = np.asarray(image, dtype=np.float32)
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_image(path, image, *, protect=()) -> Path:
    """Write an RGB image atomically (temp file, then rename); format from the extension.

    Args:
      path: destination; its folder is created.
      image: RGB in [0, 1], ``[H, W, 3]``.
      protect: paths that must never be overwritten (the inputs).
    """
    path = Path(path)
    for p in protect:
        if p is not None and Path(p).exists() and path.exists() and path.samefile(p):
            raise ImageError(f"{path}: refusing to overwrite an input image")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown image extension {path.suffix!r} (use .png, .jpg, ...)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        Image.fromarray(to_uint8(image)).save(tmp, format=fmt)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text_atomic(path, text: str) -> Path:
    """Write a text file atomically (used for JSON sidecars)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
