"""Clips in and out: video files through PyAV (FFmpeg), animated GIF/WebP through Pillow,
and folders of numbered images.

:func:`read_clip` decodes every frame at a given long edge and keeps the frame rate;
:func:`write_clip` encodes H.264 (``.mp4``, ``.mov``, ``.mkv``) or VP9 (``.webm``) with the
input's audio copied through when both containers can hold it, an animated GIF/WebP, or a
folder of PNGs.  Every output is written to a temporary file and renamed into place
(:func:`nstjax.io.image_writing.write_atomic`, so an ``output_unit`` makes it all or none).
Frames of a folder are read like any image (:func:`nstjax.io.image.load_image`: EXIF
orientation, sRGB, the decompression-bomb limit); animation frames meet the same limit.
"""

from __future__ import annotations

import os
import warnings
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
from PIL import Image, ImageSequence

from nstjax.io.image import (
    MAX_PIXELS,
    ImageError,
    display_path,
    load_image,
    resize_long_edge,
    to_rgb_array,
)
from nstjax.io.image_writing import save_image, to_uint8, write_atomic

VIDEO_EXTENSIONS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264",
                    ".m4v": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}
MUXERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".m4v": "ipod",
          ".webm": "webm", ".avi": "avi"}
ANIMATION_EXTENSIONS = (".gif", ".webp", ".apng")
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
    if suffix in ANIMATION_EXTENSIONS:
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise ImageError(f"{display_path(path)}: {w}×{h} is {w * h:,} pixels, "
                                     f"more than the {MAX_PIXELS:,}-pixel limit for decoding")
                frames, durations = [], []
                for frame in ImageSequence.Iterator(img):
                    frames.append(to_uint8(to_rgb_array(resize_long_edge(frame, size))))
                    durations.append(frame.info.get("duration") or 0)
                    if max_frames and len(frames) >= max_frames:
                        break
    except ImageError as e:
        show, msg = display_path(path), str(e)
        raise ImageError(msg if msg.startswith(show) else f"{show}: {msg}") from None
    except (OSError, EOFError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"{display_path(path)}: cannot read the animation ({e})") from None
    mean_ms = np.mean([d for d in durations if d > 0]) if any(durations) else 0
    fps = Fraction(1000 / mean_ms).limit_denominator(1001) if mean_ms else DEFAULT_FPS
    return Clip(_stacked(frames, path), fps, path)


def _read_folder(path: Path, size, max_frames, fps) -> Clip:
    if not path.is_dir():
        raise ImageError(f"{path}: no such video, animation or folder")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_EXTENSIONS)
    files = files[:max_frames] if max_frames else files
    frames = [to_uint8(load_image(f, size=size)) for f in files]
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


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad to even height and width (4:2:0 chroma needs them), repeating the edge."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _copy_audio(source, output, stream, duration: float) -> None:
    """The audio packets of ``source`` that start before ``duration`` seconds (the video's
    length: a clip cut short by ``max_frames`` gets its own stretch of sound, not all)."""
    with av.open(str(source)) as src:
        audio = src.streams.audio[0]
        start = audio.start_time or 0
        for packet in src.demux(audio):
            if packet.dts is None:
                continue
            when = packet.pts if packet.pts is not None else packet.dts
            if packet.time_base is not None and (when - start) * packet.time_base >= duration:
                break
            packet.stream = stream
            output.mux(packet)


def _write_video(file, path: Path, frames, fps, audio_from, log) -> None:
    rate = Fraction(fps).limit_denominator(100000)
    with av.open(file, "w", format=MUXERS[path.suffix.lower()]) as out:
        stream = out.add_stream(VIDEO_EXTENSIONS[path.suffix.lower()], rate=rate)
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
                _copy_audio(audio_from, out, audio, float(len(frames) / rate))
            except (av.FFmpegError, ValueError) as e:
                log(f"the audio is not copied ({e})")


def _write_animation(file, path: Path, frames, fps) -> None:
    images = [Image.fromarray(f) for f in frames]
    suffix = path.suffix.lower()
    images[0].save(file, format=Image.registered_extensions()[suffix], save_all=True,
                   append_images=images[1:], loop=0, duration=int(round(1000 / float(fps))),
                   **({"lossless": True} if suffix == ".webp" else {}))


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
    if kind == "video":
        write = lambda f: _write_video(f, path, frames, fps, audio_from, log)
    else:
        write = lambda f: _write_animation(f, path, frames, fps)
    try:
        write_atomic(path, write, what="the clip")
    except av.FFmpegError as e:
        raise ImageError(f"{display_path(path)}: could not write the clip ({e})") from None
    return path
