"""Optical flow between frames (OpenCV) and the per-pixel weights of the temporal loss.

The flow is OpenCV's DIS (Kroeger et al. 2016) or Farnebäck (2003), computed on the grey
frames in both directions; the weights are Ruder et al.'s forward-backward consistency
check (§3.2).  Everything here runs on the host in NumPy, once per clip, and is cached in
one ``.npz`` beside the output (:func:`cached_flows`) so that a rerun or a resume reads it.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from nstjax.io.image import ImageError
from nstjax.io.image_writing import write_atomic

METHODS = ("dis", "farneback")
CACHE_VERSION = 2
PHOTOMETRIC = 0.05
"""Default threshold of :func:`photometric_weights` (squared RGB distance in [0, 1] units)."""


class FlowPairs(NamedTuple):
    """Flows between frame ``i`` and frame ``i − gap``, for every ``i`` (zero where
    ``i < gap``), at frame ``i``'s pixels and at frame ``i − gap``'s.

    Attributes:
      back: ``f32[N, H, W, 2]``, ``back[i]``: frame ``i`` → frame ``i − gap`` (warps an
        output of frame ``i − gap`` into frame ``i``).
      fwd: ``f32[N, H, W, 2]``, ``fwd[i]``: frame ``i − gap`` → frame ``i`` (warps an
        output of frame ``i`` into frame ``i − gap``).
      back_weights: ``f32[N, H, W, 1]``, consistency of ``back`` (zero where ``i < gap``).
      fwd_weights: ``f32[N, H, W, 1]``, consistency of ``fwd``.
    """

    back: np.ndarray
    fwd: np.ndarray
    back_weights: np.ndarray
    fwd_weights: np.ndarray


def optical_flow(a, b, *, method: str = "dis") -> np.ndarray:
    """Flow from frame ``a`` to frame ``b``: ``f32[H, W, 2]`` with ``a(p) ≈ b(p + flow(p))``.

    Args:
      a, b: ``uint8[H, W, 3]`` RGB frames.
      method: ``"dis"`` (OpenCV's DIS, preset medium) or ``"farneback"``.
    """
    ga = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(np.ascontiguousarray(b), cv2.COLOR_RGB2GRAY)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = dis.calc(ga, gb, None)
    elif method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    else:
        raise ValueError(f"flow method must be one of {', '.join(METHODS)}, not {method!r}")
    return np.asarray(flow, np.float32)


def sample(field, flow) -> np.ndarray:
    """``field`` (``f32[H, W, C]``) sampled bilinearly at ``p + flow(p)`` (edge replicated)."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = cv2.remap(np.ascontiguousarray(field, np.float32), xs + flow[..., 0],
                    ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(field.shape)


def consistency_weights(flow, reverse) -> np.ndarray:
    """Ruder et al.'s weights ``c`` of ``flow`` (frame ``i`` → ``j``) given ``reverse``
    (frame ``j`` → ``i``): 0 at disocclusions, motion boundaries and where ``flow`` leaves
    the frame, 1 elsewhere.

    With ``w̃(p) = reverse(p + flow(p))``, a pixel is disoccluded when
    ``|w̃ + flow|² > 0.01 (|w̃|² + |flow|²) + 0.5`` and on a motion boundary when
    ``|∇flow_x|² + |∇flow_y|² > 0.01 |flow|² + 0.002``.

    Args:
      flow, reverse: ``f32[H, W, 2]``.

    Returns:
      ``f32[H, W, 1]`` in {0, 1}.

    References:
      Ruder, Dosovitskiy, Brox 2016, §3.2 (after Sundaram, Brox and Keutzer 2010).
    """
    flow = np.asarray(flow, np.float32)
    back = sample(np.asarray(reverse, np.float32), flow)
    occluded = (np.sum((back + flow) ** 2, -1)
                > 0.01 * (np.sum(back ** 2, -1) + np.sum(flow ** 2, -1)) + 0.5)
    gy_u, gx_u = np.gradient(flow[..., 0])
    gy_v, gx_v = np.gradient(flow[..., 1])
    boundary = (gx_u ** 2 + gy_u ** 2 + gx_v ** 2 + gy_v ** 2
                > 0.01 * np.sum(flow ** 2, -1) + 0.002)
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    tx, ty = xs + flow[..., 0], ys + flow[..., 1]
    outside = (tx < 0) | (tx > w - 1) | (ty < 0) | (ty > h - 1)
    return (~(occluded | boundary | outside)).astype(np.float32)[..., None]


def photometric_weights(frame, other, flow, threshold: float) -> np.ndarray:
    """1 where ``other`` warped by ``flow`` matches ``frame`` (squared RGB distance, in
    [0, 1] units, at most ``threshold``), else 0: a guard against a flow that is wrong
    yet consistent both ways (a fast object the flow misses).  Not in Ruder et al., whose
    flows (DeepFlow, EpicFlow) were better than OpenCV's; ``threshold`` 0 turns it off.

    Args:
      frame, other: ``uint8[H, W, 3]``; flow: ``f32[H, W, 2]`` from ``frame`` to ``other``.

    Returns:
      ``f32[H, W, 1]`` in {0, 1}.
    """
    if not threshold:
        return np.ones(frame.shape[:2] + (1,), np.float32)
    warped = sample(np.asarray(other, np.float32) / 255.0, flow)
    distance = np.sum((warped - np.asarray(frame, np.float32) / 255.0) ** 2, -1)
    return (distance <= threshold).astype(np.float32)[..., None]


def flow_pairs(frames, *, gap: int = 1, method: str = "dis",
               photometric: float = PHOTOMETRIC) -> FlowPairs:
    """The flows and weights between every frame and the one ``gap`` before it: Ruder et
    al.'s consistency weights times :func:`photometric_weights` (``photometric`` 0: the
    paper's weights alone).

    Args:
      frames: ``uint8[N, H, W, 3]``.
    """
    n, h, w = frames.shape[:3]
    back = np.zeros((n, h, w, 2), np.float32)
    fwd = np.zeros_like(back)
    bw = np.zeros((n, h, w, 1), np.float32)
    fw = np.zeros_like(bw)
    for i in range(gap, n):
        back[i] = optical_flow(frames[i], frames[i - gap], method=method)
        fwd[i] = optical_flow(frames[i - gap], frames[i], method=method)
        bw[i] = consistency_weights(back[i], fwd[i]) * photometric_weights(
            frames[i], frames[i - gap], back[i], photometric)
        fw[i] = consistency_weights(fwd[i], back[i]) * photometric_weights(
            frames[i - gap], frames[i], fwd[i], photometric)
    return FlowPairs(back, fwd, bw, fw)


def frames_key(frames, method: str, gaps, photometric: float = PHOTOMETRIC) -> str:
    """What a cached flow was computed from: the frames' bytes, the method, the gaps and
    the photometric threshold."""
    digest = hashlib.sha256(np.ascontiguousarray(frames).tobytes())
    digest.update(f"{frames.shape}|{method}|{tuple(gaps)}|{float(photometric)!r}|"
                  f"{CACHE_VERSION}".encode())
    return digest.hexdigest()


def cached_flows(frames, path, *, method: str = "dis", gaps=(1,),
                 photometric: float = PHOTOMETRIC, log=None) -> dict:
    """``{gap: FlowPairs}``, read from ``path`` when it holds the flows of these frames,
    else computed and written there (atomically; a damaged cache, or one that cannot be
    written, is noted through ``log`` and the run goes on)."""
    gaps = tuple(sorted(set(int(g) for g in gaps)))
    key = frames_key(frames, method, gaps, photometric)
    path = Path(path)
    if path.exists():
        try:
            with np.load(path) as z:
                if str(z["key"]) == key:
                    return {g: FlowPairs(*(z[f"{name}_{g}"] for name in FlowPairs._fields))
                            for g in gaps}
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            if log is not None:
                log(f"{path}: the cached flow is damaged ({type(e).__name__}); computing it "
                    "again")
    out = {g: flow_pairs(frames, gap=g, method=method, photometric=photometric)
           for g in gaps}
    arrays = {f"{name}_{g}": getattr(p, name) for g, p in out.items()
              for name in FlowPairs._fields}
    try:
        write_atomic(path, lambda f: np.savez_compressed(f, key=np.asarray(key), **arrays),
                     what="the flow cache")
    except ImageError as e:
        if log is not None:
            log(str(e))
    return out
