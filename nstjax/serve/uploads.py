"""Where the studio may read and write, and how an uploaded or named image gets there.

The server is given folders: ``images`` (where a path typed in the page may point, for
local use) and ``out`` (results under ``out/runs/``, uploads under ``out/uploads/``).  A
path is resolved (symbolic links followed) before it is checked, so ``../``, an absolute
path elsewhere or a link out of a folder are all refused; an upload is stored under a name
made from its content's hash and the format Pillow finds in it (never the name the
browser sent), after a size limit, and decoded by :func:`nstjax.load_image` with the
command line's checks (decompression bombs, bad files).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import NamedTuple

from nstjax.io.image import ImageError, display_path
from nstjax.io.image_writing import write_bytes_atomic

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAGIC = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF87a", ".gif"),
         (b"GIF89a", ".gif"), (b"BM", ".bmp"), (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"))

class PathRefused(ValueError):
    """A path or an upload the studio will not read or write: a one-line reason."""


class Folders(NamedTuple):
    """The only places the studio touches.

    Attributes:
      images: folders a typed path may point into (read only).
      out: the folder of results (``runs/``) and uploads (``uploads/``).
    """

    images: tuple[Path, ...]
    out: Path

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    @property
    def uploads(self) -> Path:
        return self.out / "uploads"

    @property
    def readable(self) -> tuple[Path, ...]:
        """Where an input image may be: the image folders and the uploads."""
        return tuple(self.images) + (self.uploads,)


def make_folders(images, out) -> Folders:
    """:class:`Folders` with every folder resolved; ``out`` (and its parts) created."""
    out = Path(out).expanduser().resolve()
    for sub in (out, out / "runs", out / "uploads"):
        sub.mkdir(parents=True, exist_ok=True)
    return Folders(images=tuple(Path(p).expanduser().resolve() for p in images), out=out)


def inside(path: Path, roots) -> Path | None:
    """``path`` resolved (links followed) if it lies in one of ``roots``, else ``None``."""
    try:
        real = Path(os.path.realpath(path))
    except (OSError, ValueError):
        return None
    for root in roots:
        root = Path(os.path.realpath(root))
        if real == root or root in real.parents:
            return real
    return None


def local_image(text: str, folders: Folders) -> Path:
    """The image file a typed path names: relative to the first image folder, or absolute;
    it must resolve into one of :attr:`Folders.readable` and be a file.

    Raises:
      PathRefused: otherwise, with a one-line reason (never the resolved target).
    """
    text = str(text).strip()
    if not text or "\x00" in text:
        raise PathRefused("give a path to an image file")
    roots = folders.readable
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (folders.images[0] if folders.images else folders.uploads) / path
    real = inside(path, roots)
    if real is None:
        allowed = ", ".join(display_path(r) for r in roots)
        raise PathRefused(f"{display_path(text)}: outside the folders this server may read "
                          f"({allowed})")
    if not real.is_file():
        raise PathRefused(f"{display_path(text)}: no such image file")
    return real


def image_suffix(data: bytes) -> str | None:
    """The file suffix of an image format the studio accepts, from the first bytes (the
    name the browser sent is never trusted), or ``None``."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((suffix for magic, suffix in MAGIC if data.startswith(magic)), None)


def store_upload(data: bytes, folders: Folders, *, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Keep an uploaded image in ``out/uploads`` under a name from its content; its first
    bytes must be those of an accepted format (its size and pixels are checked when it is
    loaded, by :func:`nstjax.load_image`).

    Raises:
      PathRefused: empty, too large, or not an image.
    """
    if not data:
        raise PathRefused("the file is empty")
    if len(data) > max_bytes:
        raise PathRefused(f"the file is {len(data) / 2**20:.1f} MB, over this server's "
                          f"{max_bytes / 2**20:.0f} MB limit")
    suffix = image_suffix(data)
    if suffix is None:
        raise PathRefused("not an image file (PNG, JPEG, WebP, TIFF, BMP or GIF)")
    path = folders.uploads / (hashlib.sha256(data).hexdigest()[:24] + suffix)
    if not path.exists():
        try:
            write_bytes_atomic(path, data, what="the upload")
        except ImageError as e:
            raise PathRefused(str(e)) from None
    return path


def run_file(folders: Folders, run_id: str, name: str, allowed) -> Path:
    """A result file of a past run: ``run_id`` a plain folder name under ``out/runs``,
    ``name`` one of ``allowed``; the file must exist and resolve inside ``out/runs``.

    Raises:
      PathRefused: otherwise.
    """
    if not run_id or not all(c.isalnum() or c in "-_" for c in run_id) or name not in allowed:
        raise PathRefused("no such run or file")
    path = folders.runs / run_id / name
    real = inside(path, (folders.runs,))
    if real is None or not real.is_file():
        raise PathRefused("no such run or file")
    return real
