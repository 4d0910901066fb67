"""Clips in and out: video files through PyAV (FFmpeg), animated GIF/WebP through Pillow,
and folders of numbered images.

:func:`read_clip` decodes every frame at a given long edge and keeps the frame rate;
:func:`write_clip` encodes H.264 (``.mp4``, ``.mov``, ``.mkv``) or VP9 (``.webm``) with the
input's audio copied through when both containers can hold it, an animated GIF/WebP, or a
folder of PNGs.  Every output is written to a temporary file and renamed into place
(:func:`nstjax.io.image_writing.publish_file`, so an ``output_unit`` makes it all or none).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
from PIL import Image, ImageSequence

from nstjax.io.image import ImageError, resize_long_edge
from nstjax.io.image_writing import publish_file, save_image

VIDEO_EXTENSIONS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264",
                    ".m4v": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}
ANIMATION_EXTENSIONS = (".gif", ".webp", ".png", ".apng")
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
DEFAULT_FPS = Fraction(24)


class Clip(NamedTuple):
    """A decoded clip.

    Attributes:
      frames: ``uint8[N, H, W, 3]`` RGB.
      fps: frames per second.
      source: the path it was read from.
      audio: whether the source has an audio stream (a video container).
    """

    frames: np.ndarray
    fps: Fraction
    source: Path
    audio: bool = False


def clip_kind(path) -> str:
    """``"video"``, ``"animation"`` or ``"folder"``, from the path (an existing folder, a
    name without a suffix or ending in ``/`` is a folder)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir() or str(path).endswith(os.sep) or not suffix:
        return "folder"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in (".gif", ".webp", ".apng"):
        return "animation"
    raise ImageError(f"{path}: not a video (.mp4, .mov, .mkv, .webm, .avi), an animation "
                     "(.gif, .webp) or a folder of frames")


def _resized(img: Image.Image, size) -> np.ndarray:
    return np.asarray(resize_long_edge(img.convert("RGB"), size), np.uint8)


def _read_video(path: Path, size, max_frames) -> Clip:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ImageError(f"{path}: has no video stream")
            stream = container.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
            frames = []
            for frame in container.decode(stream):
                frames.append(_resized(frame.to_image(), size))
                if max_frames and len(frames) >= max_frames:
                    break
            audio = bool(container.streams.audio)
    except av.FFmpegError as e:
        raise ImageError(f"{path}: cannot decode the video ({e})") from None
    return Clip(_stacked(frames, path), Fraction(fps), path, audio)


def _read_animation(path: Path, size, max_frames) -> Clip:
    try:
        with Image.open(path) as img:
            frames, durations = [], []
            for frame in ImageSequence.Iterator(img):
                frames.append(_resized(frame, size))
                durations.append(frame.info.get("duration") or 0)
                if max_frames and len(frames) >= max_frames:
                    break
    except (OSError, Image.DecompressionBombError) as e:
        raise ImageError(f"{path}: cannot read the animation ({e})") from None
    mean_ms = np.mean([d for d in durations if d > 0]) if any(durations) else 0
    fps = Fraction(1000 / mean_ms).limit_denominator(1001) if mean_ms else DEFAULT_FPS
    return Clip(_stacked(frames, path), fps, path)


def _read_folder(path: Path, size, max_frames, fps) -> Clip:
    if not path.is_dir():
        raise ImageError(f"{path}: no such video, animation or folder")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_EXTENSIONS)
    files = files[:max_frames] if max_frames else files
    frames = []
    for f in files:
        try:
            with Image.open(f) as img:
                frames.append(_resized(img, size))
        except OSError as e:
            raise ImageError(f"{f}: cannot read the frame ({e})") from None
    return Clip(_stacked(frames, path), Fraction(fps or DEFAULT_FPS), path)


def _stacked(frames, path) -> np.ndarray:
    if not frames:
        raise ImageError(f"{path}: no frames")
    if len({f.shape for f in frames}) > 1:
        raise ImageError(f"{path}: the frames differ in size")
    return np.stack(frames)


def read_clip(path, *, size: int | None = None, max_frames: int | None = None,
              fps=None) -> Clip:
    """Decode a clip: every frame resized to long edge ``size`` (None: as it is).

    Args:
      path: a video file, an animated GIF/WebP, or a folder of images (sorted by name).
      size: long edge in pixels.
      max_frames: read at most this many frames.
      fps: the frame rate of a folder (default 24); files carry their own.

    Raises:
      ImageError: one line naming the path.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file or folder")
    kind = clip_kind(path)
    if kind == "video":
        return _read_video(path, size, max_frames)
    if kind == "animation":
        return _read_animation(path, size, max_frames)
    return _read_folder(path, size, max_frames, fps)


def to_uint8(frames) -> np.ndarray:
    """``f32[..., 3]`` in [0, 1] as ``uint8`` (rounded)."""
    return np.clip(np.rint(np.asarray(frames, np.float32) * 255.0), 0, 255).astype(np.uint8)


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad to even height and width (4:2:0 chroma needs them), repeating the edge."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _copy_audio(source, output, streams) -> None:
    with av.open(str(source)) as src:
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is None:
                continue
            packet.stream = streams
            output.mux(packet)


def _write_video(path: Path, frames, fps, audio_from, log) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        with av.open(tmp, "w") as out:
            stream = out.add_stream(VIDEO_EXTENSIONS[path.suffix.lower()],
                                    rate=Fraction(fps).limit_denominator(100000))
            h, w = _even(frames[0]).shape[:2]
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            audio = None
            if audio_from is not None:
                try:
                    with av.open(str(audio_from)) as src:
                        audio = out.add_stream_from_template(src.streams.audio[0])
                except (av.FFmpegError, ValueError) as e:
                    log(f"the audio is not copied ({e})")
            for frame in frames:
                out.mux(stream.encode(av.VideoFrame.from_ndarray(_even(frame), format="rgb24")))
            out.mux(stream.encode())
            if audio is not None:
                try:
                    _copy_audio(audio_from, out, audio)
                except (av.FFmpegError, ValueError) as e:
                    log(f"the audio is not copied ({e})")
        os.chmod(tmp, 0o644)
        publish_file(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_animation(path: Path, frames, fps) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        images = [Image.fromarray(f) for f in frames]
        fmt = "PNG" if path.suffix.lower() in (".png", ".apng") else None
        images[0].save(tmp, format=fmt or Image.registered_extensions()[path.suffix.lower()],
                       save_all=True, append_images=images[1:], loop=0,
                       duration=int(round(1000 / float(fps))),
                       **({"lossless": True} if path.suffix.lower() == ".webp" else {}))
        os.chmod(tmp, 0o644)
        publish_file(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_clip(path, frames, fps, *, audio_from=None, log=print) -> Path:
    """Write ``frames`` (``uint8[N, H, W, 3]``) to ``path``: a video file, an animation, or
    a folder of ``00000.png``…; ``audio_from``, a video whose audio is copied through."""
    path = Path(path)
    kind = clip_kind(path)
    frames = np.asarray(frames)
    if kind == "folder":
        path.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(frames):
            save_image(path / f"{i:05d}.png", frame.astype(np.float32) / 255.0)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "video":
            _write_video(path, frames, fps, audio_from, log)
        else:
            _write_animation(path, frames, fps)
    except (av.FFmpegError, OSError) as e:
        raise ImageError(f"{path}: could not write the clip ({e})") from None
    return path
