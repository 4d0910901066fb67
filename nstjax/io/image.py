"""Image files in: RGB float32 in [0, 1], upright, in sRGB, resized.

Everything here is host-side (NumPy and Pillow); the JAX core never touches files.  Every
failure is an :class:`ImageError` with a one-line message naming the user's path (never a
hidden temporary file); Pillow's warnings never reach the user.  Writing (atomic, 8- or
16-bit, with alpha) is :mod:`nstjax.io.image_writing`, which shares :class:`ImageError` and
:func:`display_path` from here.

Reading:

* **Orientation.** The EXIF orientation is applied (``ImageOps.exif_transpose``), so phone
  photos come out upright; :func:`image_size` reports the upright size.
* **Colour.** An embedded ICC profile is converted to sRGB (LittleCMS via
  ``PIL.ImageCms``, relative colorimetric), so a Display P3 or Adobe RGB photo keeps its
  colours; a profile that cannot be used is ignored with a note.
* **Large files (decompression bombs).** An image whose *decoded* size exceeds
  :data:`MAX_PIXELS` is refused with its pixel count and the limit, before any pixel is
  decoded.  JPEGs are decoded at 1/2, 1/4 or 1/8 scale when the requested size allows
  (``Image.draft``), so a 20000×20000 JPEG read at ``size=512`` decodes 2500×2500 pixels
  and is accepted; a PNG of that size cannot be decoded partially and is refused.  We
  chose refusal over a slow, memory-hungry full decode and downscale because a file that
  large is far more often an attack or a mistake than a style image, and the user can
  downscale it once with any image tool.  Pillow's own limit and warning are replaced by
  this check while we read.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MIN_SIZE = 16
DEFAULT_SIZE = 384     # the long edge every command and the page load at unless told
MAX_PIXELS = 2 * 89_478_485
"""Most pixels we decode: Pillow's own hard limit (~179 MP, about 0.7 GB as RGBA)."""

_ORIENTATION = 0x0112
_PILLOW_LOCK = threading.RLock()
_SRGB = None


class ImageError(ValueError):
    """An image file is missing, unreadable, unsuitable, or cannot be written."""


def display_path(path) -> str:
    """A path as one printable line: undecodable bytes and control characters as ``\\xNN``."""
    text = os.fsdecode(path)
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" for c in text)


def as_path(path) -> Path:
    return Path(os.fsdecode(path))


# ----------------------------------------------------------------------------- reading

@contextlib.contextmanager
def _pillow_quietly(path, log):
    """Replace Pillow's bomb check by ours and turn its warnings into one-line notes."""
    with _PILLOW_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    for w in caught:
        if log is not None and not issubclass(w.category, Image.DecompressionBombWarning):
            first = str(w.message).strip().splitlines()[:1] or [w.category.__name__]
            log(f"nstjax: note: {display_path(path)}: {first[0]}")


def _check_file(path: Path) -> None:
    show = display_path(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ImageError(f"{show}: no such file") from None
    except OSError as e:
        raise ImageError(f"{show}: cannot read it ({e.strerror})") from None
    if os.path.isdir(path):
        raise ImageError(f"{show}: is a folder, not an image file")
    if not os.access(path, os.R_OK):
        raise ImageError(f"{show}: cannot read it (permission denied)")
    if st.st_size == 0:
        raise ImageError(f"{show}: is empty, not an image")


def _orientation(img: Image.Image) -> int:
    """EXIF orientation without decoding pixels (Pillow's PNG ``getexif`` would decode)."""
    try:
        if img.format == "PNG":
            raw = img.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = img.getexif()
        return int(exif.get(_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 -- damaged EXIF: treat as upright
        return 1


def _swaps_axes(orientation: int) -> bool:
    return orientation in (5, 6, 7, 8)


def _upright_size(img: Image.Image) -> tuple[int, int]:
    w, h = img.size
    return (h, w) if _swaps_axes(_orientation(img)) else (w, h)


def _target(width: int, height: int, size, shape):
    """(w, h) the caller will end with, in upright orientation; None if no resize."""
    if shape is not None:
        return shape[1], shape[0]
    if size is None:
        return None
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _open(path: Path, *, size=None, shape=None) -> Image.Image:
    """Open ``path`` (header only), let JPEG decode at reduced scale, check the pixel limit.

    Must be called inside :func:`_pillow_quietly`.
    """
    _check_file(path)
    show = display_path(path)
    try:
        img = Image.open(path)
    except UnidentifiedImageError:
        raise ImageError(f"{show}: not a readable image (no format Pillow knows)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{show}: not a readable image ({type(e).__name__})") from None
    try:
        target = _target(*_upright_size(img), size, shape)
        if target is not None and img.format == "JPEG":
            if _swaps_axes(_orientation(img)):
                target = target[::-1]
            img.draft(img.mode, target)  # decoder scales by 1/2^k, never below target
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise ImageError(f"{show}: {w}×{h} is {w * h:,} pixels, more than the "
                             f"{MAX_PIXELS:,}-pixel limit for decoding an image (a "
                             "decompression bomb, or a picture to downscale first)")
    except BaseException:
        img.close()
        raise
    return img


def image_size(path) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, upright (EXIF orientation applied).

    Decodes no pixels, so it is safe on decompression bombs (use :func:`scaled_shape` to
    also apply the pixel limit).

    Raises:
      ImageError: one line, for a missing, unreadable or non-image file, or a folder.
    """
    path = as_path(path)
    with _pillow_quietly(path, None):
        _check_file(path)
        try:
            with Image.open(path) as img:
                return _upright_size(img)
        except UnidentifiedImageError:
            raise ImageError(f"{display_path(path)}: not a readable image "
                             "(no format Pillow knows)") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageError(f"{display_path(path)}: not a readable image "
                             f"({type(e).__name__})") from None


def scaled_shape(path, size: int | None) -> tuple[int, int]:
    """``(height, width)`` that :func:`load_image` ``(path, size=size)`` will return.

    Reads the header only; refuses, as :func:`load_image` would, a file above
    :data:`MAX_PIXELS` (after JPEG reduced-scale decoding) or a result below
    :data:`MIN_SIZE`.  Meant for memory checks before anything is decoded.

    Raises:
      ImageError: one line naming the path.
    """
    path = as_path(path)
    with _pillow_quietly(path, None):
        img = _open(path, size=size)
        with img:
            w, h = _upright_size(img)
    if size is not None:
        w, h = _target(w, h, size, None)
    if min(w, h) < MIN_SIZE:
        raise ImageError(f"{display_path(path)}: {w}×{h} is below {MIN_SIZE} pixels")
    return h, w


def _to_srgb(img: Image.Image, path, log) -> Image.Image:
    """Convert an image with an embedded ICC profile to sRGB; ignore an unusable profile."""
    icc = img.info.get("icc_profile")
    if not icc:
        return img
    from PIL import ImageCms
    global _SRGB
    if _SRGB is None:
        _SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    if img.mode in ("P", "PA", "LA", "La", "RGBa", "1"):
        img = img.convert("RGBA" if "A" in img.mode or "a" in img.mode
                          or "transparency" in img.info else "RGB")
    out_mode = {"RGBA": "RGBA", "RGB": "RGB", "CMYK": "RGB", "L": "RGB"}.get(img.mode)
    try:
        if out_mode is None:
            raise ValueError(f"mode {img.mode}")
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(
            img, src, _SRGB, outputMode=out_mode,
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as e:
        if log is not None:
            log(f"nstjax: note: {display_path(path)}: ignoring its colour profile, which "
                f"cannot be applied ({str(e).strip().splitlines()[0] if str(e) else 'unknown'})")
        return img


def _resizable(img: Image.Image) -> Image.Image:
    """A mode Pillow resizes with the asked filter (it uses NEAREST for "1" and "P")."""
    if img.mode in ("RGB", "RGBA", "L", "LA", "I", "I;16", "F"):
        return img
    if img.mode in ("1",):
        return img.convert("L")
    if img.mode in ("P", "PA"):
        keep_alpha = img.mode == "PA" or "transparency" in img.info
        return img.convert("RGBA" if keep_alpha else "RGB")
    if img.mode.startswith("I;16"):
        return img.convert("I")
    return img.convert("RGB")


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert any Pillow image (L, LA, P, RGBA, I;16, I, F, CMYK, ...) to RGB float32 [0, 1].

    Transparency is composited over white; 16-bit and 32-bit integer images are scaled by
    their bit depth.  Float images must hold finite values in [0, 1] (a float file in
    0-255, or with NaN or infinite pixels, is refused: clipping would turn it white or
    black without a word); values within 1e-3 of the range are clipped.
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
        a = np.asarray(img, dtype=np.float32)
        if not np.all(np.isfinite(a)):
            raise ImageError("has NaN or infinite pixels")
        lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            raise ImageError(f"float pixels from {lo:g} to {hi:g}; a float image must hold "
                             "values in [0, 1]")
        rgb = np.repeat(np.clip(a, 0.0, 1.0)[..., None], 3, axis=-1)
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
    new = _target(w, h, size, None)
    if min(new) < MIN_SIZE:
        raise ImageError(f"resizing {w}×{h} to long edge {size} gives {new[0]}×{new[1]}, "
                         f"below the {MIN_SIZE}-pixel minimum")
    if new == (w, h):
        return img
    return _resizable(img).resize(new, Image.Resampling.LANCZOS, reducing_gap=3.0)


def alpha_channel(img: Image.Image) -> np.ndarray | None:
    """The alpha channel of a Pillow image as ``uint8[H, W]``, or ``None`` without one."""
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        return np.asarray(img.convert("RGBA").getchannel("A"), dtype=np.uint8).copy()
    return None


def load_image(path, *, size: int | None = None, shape: tuple[int, int] | None = None,
               log=None, alpha: bool = False):
    """Read an image file as upright sRGB float32 in [0, 1], ``f32[H, W, 3]``.

    With ``alpha=True``, returns ``(rgb, a)``: ``a`` is the file's alpha channel as
    ``uint8[H, W]`` (resized with the image, so identical to the file's bytes at its own
    size), or ``None`` when the file has none; ``rgb`` is composited over white as always.

    Args:
      path: any format Pillow reads (``str``, ``bytes`` or path-like; any file name).
      size: resize so the long edge has this many pixels.
      shape: resize to exactly ``(H, W)`` (overrides ``size``).
      log: receives one-line notes (a colour profile ignored, Pillow's warnings); None
        drops them.

    Raises:
      ImageError: with a one-line reason, for a missing, unreadable, tiny or too large
        image (see the module docstring for the pixel limit).
    """
    path = as_path(path)
    show = display_path(path)
    if shape is not None and min(shape) < MIN_SIZE:
        raise ImageError(f"size {shape[1]}×{shape[0]} is below {MIN_SIZE} pixels")
    try:
        with _pillow_quietly(path, log):
            with _open(path, size=size, shape=shape) as img:
                img.load()
                upright = ImageOps.exif_transpose(img)
                upright = _to_srgb(upright, path, log)
                if shape is not None:
                    upright = _resize_exact(upright, shape)
                else:
                    upright = resize_long_edge(upright, size)
                arr = to_rgb_array(upright)
                a = alpha_channel(upright) if alpha else None
    except ImageError as e:
        msg = str(e)
        raise ImageError(msg if msg.startswith(show) else f"{show}: {msg}") from None
    except MemoryError:
        raise ImageError(f"{show}: not enough memory to decode it") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{show}: not a readable image ({type(e).__name__})") from None
    if min(arr.shape[:2]) < MIN_SIZE:
        raise ImageError(f"{show}: {arr.shape[1]}×{arr.shape[0]} is below {MIN_SIZE} pixels")
    return (arr, a) if alpha else arr


def _resize_exact(img: Image.Image, shape):
    h, w = shape
    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = Image.fromarray((to_rgb_array(img) * 255.0 + 0.5).astype(np.uint8))
    return img.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)

