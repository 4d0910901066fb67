"""Image files out: RGB in [0, 1] to 8- or 16-bit files, and text sidecars, written atomically.

Host-side (NumPy and Pillow), like :mod:`nstjax.io.image`, which reads; failures are the same
one-line :class:`~nstjax.io.image.ImageError` naming the user's path.

* **Atomic writes.** Every file is written to a temporary file in the destination's own
  folder (so the final ``os.replace`` is a rename on one file system) and renamed over the
  destination only when complete: a full disk or a failed write leaves the previous file
  untouched and no partial file behind.  :func:`check_writable` makes the same temporary
  file before a long computation, so an unwritable place is refused before any work.
* **Never overwriting inputs.** ``protect`` names the input images; a destination that is
  the same file as one of them (``samefile``, so links and other spellings count) is
  refused, as is a folder.
* **16-bit PNG.** ``bit_depth=16`` writes 16 bits per channel with a small PNG encoder of
  our own (:func:`_png16`, tagged sRGB), since Pillow cannot write 16-bit RGB.
* **All or nothing.** Inside :func:`output_unit` the renames wait for the end of the block:
  an image, its sidecar and its pictures appear together, or (on any error) none of them
  does and the previous files stay as they were.
* **Alpha.** An optional ``uint8`` alpha channel (a transparent content image's, kept
  byte for byte) is written for the formats in :data:`ALPHA_FORMATS` (PNG, WebP lossless,
  TIFF); 16-bit PNGs get it times 257.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from nstjax.io.image import ImageError, as_path, display_path


def to_uint8(image) -> np.ndarray:
    """RGB in [0, 1] (any array) to ``uint8[H, W, 3]``, rounded and clipped."""
    a = np.asarray(image, dtype=np.float32)
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def to_uint16(image) -> np.ndarray:
    """RGB in [0, 1] (any array) to ``uint16[H, W, 3]``, rounded and clipped."""
    a = np.asarray(image, dtype=np.float64)
    return (np.clip(a, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)


def _output_format(path: Path, bit_depth: int) -> str:
    show = display_path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{show}: unknown image extension {path.suffix!r} (use .png, .jpg, ...)")
    if bit_depth not in (8, 16):
        raise ImageError(f"{show}: bit depth {bit_depth} is not 8 or 16")
    if bit_depth == 16 and fmt != "PNG":
        raise ImageError(f"{show}: 16 bits per channel is written as PNG only (use .png)")
    return fmt


def _check_target(path: Path, protect) -> None:
    show = display_path(path)
    if path.is_dir():
        raise ImageError(f"{show}: is a folder; give a file name, e.g. "
                         f"{display_path(path / 'out.png')}")
    for p in protect:
        if p is not None and Path(p).exists() and path.exists() and path.samefile(p):
            raise ImageError(f"{show}: refusing to overwrite an input image")
    if path.is_file() and not path.stat().st_mode & 0o222:   # mode bits: root too
        raise ImageError(f"{show}: exists and is read-only; not replacing it")


def _make_folder(path: Path) -> None:
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise ImageError(f"{display_path(path)}: {display_path(parent)} is a file, not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ImageError(f"{display_path(path)}: cannot create its folder "
                         f"{display_path(parent)} ({e.strerror})") from None


def _temp_in(path: Path, *, what: str):
    try:
        return tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix + ".part",
                                dir=path.parent)
    except OSError as e:
        raise ImageError(f"{display_path(path)}: cannot {what} in {display_path(path.parent)} "
                         f"({e.strerror})") from None


def check_writable(path, *, protect=(), bit_depth: int = 8, need_bytes: int = 0) -> Path:
    """Check, before a long computation, that :func:`save_image` can write ``path``.

    Validates the extension and bit depth, refuses a folder or an input (``protect``),
    creates the folder, and write-tests the real folder with a temporary file (removed
    again), so permissions, read-only mounts and places like ``/proc`` are caught.
    ``need_bytes`` (e.g. ``3 * H * W``, an uncompressed image) is compared to the free space.

    Returns:
      The path, as a :class:`~pathlib.Path`.

    Raises:
      ImageError: one line naming ``path``.
    """
    path = as_path(path)
    _output_format(path, bit_depth)
    _check_target(path, protect)
    _make_folder(path)
    fd, tmp = _temp_in(path, what="write")
    try:
        try:
            os.write(fd, b"\0")
        finally:
            os.close(fd)
        free = shutil.disk_usage(path.parent).free
    except OSError as e:
        raise ImageError(f"{display_path(path)}: cannot write in {display_path(path.parent)} "
                         f"({e.strerror})") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    if need_bytes and free < need_bytes:
        raise ImageError(f"{display_path(path)}: {free / 2**20:.1f} MiB free in "
                         f"{display_path(path.parent)}, the image needs up to "
                         f"{need_bytes / 2**20:.1f} MiB")
    return path


def _png16(fileobj, rgb16: np.ndarray) -> None:
    """Write ``uint16[H, W, 3]`` (or ``[H, W, 4]`` with alpha) as a 16-bit PNG (Pillow
    cannot), tagged sRGB."""
    h, w, c = rgb16.shape
    rows = np.zeros((h, 1 + 2 * c * w), np.uint8)  # filter byte 0 (None) per row
    rows[:, 1:] = rgb16.astype(">u2").view(np.uint8).reshape(h, 2 * c * w)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    fileobj.write(b"\x89PNG\r\n\x1a\n"
                  + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 6 if c == 4 else 2,
                                               0, 0, 0))
                  + chunk(b"sRGB", b"\x00")
                  + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
                  + chunk(b"IEND", b""))


ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")


def can_hold_alpha(path) -> bool:
    """Whether :func:`save_image` can write an alpha channel at ``path`` (by extension)."""
    return Image.registered_extensions().get(as_path(path).suffix.lower()) in ALPHA_FORMATS


_pending: contextvars.ContextVar[list | None] = contextvars.ContextVar("pending",
                                                                      default=None)


def publish_file(tmp, path) -> None:
    """Rename the finished temporary file ``tmp`` over ``path``: now, or inside an
    :func:`output_unit` at its end."""
    pending = _pending.get()
    if pending is None:
        os.replace(tmp, path)
    else:
        pending.append((os.fspath(tmp), os.fspath(path)))


@contextlib.contextmanager
def output_unit():
    """A block whose files appear together: every atomic write inside it is renamed into
    place at the end of the block, in order; if the block raises (a full disk at the
    sidecar, Ctrl-C), the temporary files are removed and no destination changes."""
    pending: list = []
    token = _pending.set(pending)
    try:
        yield
    except BaseException:
        for tmp, _ in pending:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    finally:
        _pending.reset(token)
    for tmp, path in pending:
        os.replace(tmp, path)


def _write_atomically(path: Path, mode: str, write, *, what: str) -> Path:
    """``write(file)`` into a temporary file beside ``path``, then rename it over ``path``:
    a reader never sees half a file, and on any failure the previous file is untouched and
    the temporary one removed (one-line :class:`ImageError` naming ``what``)."""
    _make_folder(path)
    existed = path.exists()
    fd, tmp = _temp_in(path, what="write")
    published = False
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            write(f)
        os.chmod(tmp, 0o644)
        publish_file(tmp, path)
        published = True
    except OSError as e:
        kept = "the previous file is unchanged" if existed else "nothing was written"
        raise ImageError(f"{display_path(path)}: could not write {what} "
                         f"({e.strerror or e}); {kept}") from None
    finally:
        if not published and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_image(path, image, *, protect=(), bit_depth: int = 8, alpha=None) -> Path:
    """Write an RGB image atomically (temp file, then rename); format from the extension.

    Args:
      path: destination; its folder is created.
      image: RGB in [0, 1], ``[H, W, 3]``.
      protect: paths that must never be overwritten (the inputs).
      bit_depth: 8, or 16 for a 16-bit-per-channel PNG.
      alpha: optional ``uint8[H, W]`` alpha channel, written as it is (8 bits) or times 257
        (16 bits), for PNG, WebP and TIFF (:data:`ALPHA_FORMATS`).

    Returns:
      The path written.

    Raises:
      ImageError: one line naming ``path`` (a folder, an input, an unknown extension, an
        unwritable place, a full disk); a previous file at ``path`` is then left untouched
        and no partial file remains.
    """
    path = as_path(path)
    fmt = _output_format(path, bit_depth)
    if alpha is not None:
        alpha = np.asarray(alpha)
        if fmt not in ALPHA_FORMATS:
            raise ImageError(f"{display_path(path)}: {fmt} has no alpha channel (use .png)")
        if alpha.dtype != np.uint8 or alpha.shape != np.shape(image)[:2]:
            raise ImageError(f"{display_path(path)}: alpha must be uint8 of shape "
                             f"{np.shape(image)[:2]}, not {alpha.dtype} {alpha.shape}")
    _check_target(path, protect)

    def write(f):
        if bit_depth == 16:
            rgb = to_uint16(image)
            if alpha is not None:
                rgb = np.dstack([rgb, alpha.astype(np.uint16) * np.uint16(257)])
            _png16(f, rgb)
        elif alpha is not None:
            Image.fromarray(np.dstack([to_uint8(image), alpha])).save(
                f, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        else:
            Image.fromarray(to_uint8(image)).save(f, format=fmt)

    return _write_atomically(path, "wb", write, what="the image")


def write_atomic(path, write, *, what: str = "the file") -> Path:
    """``write(file)`` (a binary file object) into a temporary file beside ``path``, then
    renamed over it (at the end of an :func:`output_unit`, inside one); on any failure the
    temporary file is removed and a previous file at ``path`` is left untouched.

    Raises:
      ImageError: one line naming ``path``, for an :class:`OSError` (other errors pass
        through, the temporary file removed all the same).
    """
    return _write_atomically(as_path(path), "wb", write, what=what)


def write_bytes_atomic(path, data: bytes, *, what: str = "the file") -> Path:
    """Write ``data`` to ``path`` atomically (an encoded image made elsewhere, ...).

    Raises:
      ImageError: one line naming ``path``; a previous file is left untouched.
    """
    return write_atomic(path, lambda f: f.write(data), what=what)


def write_text_atomic(path, text: str) -> Path:
    """Write a UTF-8 text file atomically (used for JSON sidecars).

    Raises:
      ImageError: one line naming ``path``; a previous file is left untouched.
    """
    path = as_path(path)
    if path.is_dir():
        raise ImageError(f"{display_path(path)}: is a folder, not a file")
    return _write_atomically(path, "w", lambda f: f.write(text), what="it")
