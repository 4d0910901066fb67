"""``nstjax video``: temporally consistent style transfer of a clip (Ruder et al. 2016).

Reads a video (PyAV), an animated GIF/WebP or a folder of frames; writes the same kinds
(format from the output's name; a name without a suffix is a folder of PNGs), at the input's
frame rate, with the audio copied through between video files.  ``--mode sequential``
starts each frame from the previous output warped by the optical flow and holds it there
with the temporal loss; ``--mode multipass`` solves every frame at once, vmapped in chunks,
in alternating sweeps; ``--mode independent`` is the flickering baseline.  Work in progress
lives in ``<output>.work/`` beside the output: the flow (computed once, reused by any later
run on the same frames), every finished frame and the per-frame record.  Ctrl-C keeps them
and ``--resume`` continues.  The sidecar ``<output>.json`` records per-frame losses,
iterations, times and the temporal error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jax
import numpy as np

import nstjax
from nstjax.cli import common, counts, run_pictures, stylize
from nstjax.cli.common import MIN_SIZE, UsageError
from nstjax.cli.session import session_of
from nstjax.cli.inputs import Inputs
from nstjax.cli.video_work import Work, settings_of
from nstjax.io.image import ImageError, load_image
from nstjax.io.image_writing import output_unit
from nstjax.run import memory
from nstjax.run.start import INITS, check_solver
from nstjax.run.transfer_memory import does_not_fit, largest_edge, plan_transfer
from nstjax.video import multipass
from nstjax.video.api import DEFAULT_PASSES
from nstjax.video.driver import DEFAULT_TEMPORAL_WEIGHT, MODES
from nstjax.video.flow import METHODS, cached_flows
from nstjax.video.frames import clip_kind, read_clip, write_clip

# Multi-pass holds every frame in float32: content, last and current pass, their start
# images, and the flows (two per frame): about this many frame-sized copies.
HOST_COPIES = 8


def add_arguments(p) -> None:
    common.add_input_args(p)
    o = p.add_argument_group("outputs")
    o.add_argument("--output", help="video (.mp4 .mov .mkv .webm), animation (.gif .webp) "
                   "or folder of PNG frames (a name without a suffix)")
    o.add_argument("--resume", action="store_true", help="continue a stopped run from the "
                   "frames kept in <output>.work/")
    common.add_progress_args(o)
    v = p.add_argument_group("video (Ruder, Dosovitskiy, Brox 2016; IJCV 2018)")
    v.add_argument("--mode", choices=MODES, default="sequential",
                   help="sequential (default), multipass, or independent frames")
    v.add_argument("--temporal-weight", type=float, default=DEFAULT_TEMPORAL_WEIGHT,
                   help=f"γ of the temporal loss (default {DEFAULT_TEMPORAL_WEIGHT:g})")
    v.add_argument("--long-term", nargs="+", help="sequential: gaps of the earlier frames "
                   "held by the temporal loss, e.g. 1,2,4 (default 1: short-term only)")
    v.add_argument("--passes", type=counts.count, default=DEFAULT_PASSES,
                   help=f"multipass: passes (default {DEFAULT_PASSES})")
    v.add_argument("--pass-iters", type=counts.count, help="multipass: iterations per frame and pass "
                   "(default --iters / --passes)")
    v.add_argument("--blend", type=float, default=multipass.DEFAULT_BLEND,
                   help="multipass: δ, weight of the warped neighbour in a pass's start")
    v.add_argument("--chunk", type=counts.count, help="multipass: frames per vmapped program "
                   "(default: as many as fit in memory)")
    v.add_argument("--flow", choices=METHODS, default="dis", help="optical flow (OpenCV)")
    v.add_argument("--max-frames", type=counts.count, help="read at most this many frames")
    v.add_argument("--fps", type=float, help="frame rate of a folder of frames (default 24)")
    c = p.add_argument_group("colour (Gatys et al. 2017 §5) and loss weights")
    c.add_argument("--preserve-color", choices=("luminance", "histogram"))
    c.add_argument("--color-match", choices=("cholesky", "eigen"))
    for name, text in (("content-weight", "α"), ("style-weight", "β"), ("tv-weight", "τ")):
        c.add_argument(f"--{name}", type=float, help=text)
    for name in ("style-layer-weights", "content-layer-weights", "style-blend", "hyper"):
        c.add_argument(f"--{name}", nargs="+")
    m = p.add_argument_group("spatial control (the same masks on every frame)")
    m.add_argument("--style-mask", nargs="+", help="one greyscale mask per style image")
    m.add_argument("--content-mask", help="greyscale mask, white = keep photographic")
    m.add_argument("--mask-mode", choices=("average", "inside"))
    common.add_objective_args(p)
    common.add_solver_args(p)


def _check_numbers(args) -> tuple[int, ...]:
    for flag, value, low in (("--passes", args.passes, 1), ("--pass-iters", args.pass_iters, 1),
                             ("--chunk", args.chunk, 1), ("--max-frames", args.max_frames, 1)):
        if value is not None and value < low:
            raise UsageError(f"{flag} must be at least {low}, not {value}")
    if not 0.0 <= args.blend <= 1.0:
        raise UsageError(f"--blend must be in [0, 1], not {args.blend}")
    if not 0.0 <= args.temporal_weight < float("inf"):
        raise UsageError(f"--temporal-weight must be >= 0, not {args.temporal_weight}")
    if args.fps is not None and not 0 < args.fps < 1000:
        raise UsageError(f"--fps must be in (0, 1000), not {args.fps}")
    gaps = common.numbers(args.long_term, "--long-term") or (1.0,)
    if any(g != int(g) or g < 1 for g in gaps):
        raise UsageError("--long-term: whole numbers of frames, at least 1")
    if args.long_term is not None and args.mode != "sequential":
        raise UsageError("--long-term is for --mode sequential")
    return tuple(sorted({int(g) for g in gaps}))


def _check(args):
    """Validate everything before any work: ``(output, work folder, gaps)``."""
    if args.demo:
        raise UsageError("--demo makes still images: give --content CLIP and --style")
    common.check_inputs_given(args)
    if args.output is None:
        raise UsageError("give --output (a video, an animation or a folder)")
    gaps = _check_numbers(args)
    out, content = Path(args.output), Path(args.content)
    try:
        out_kind = clip_kind(out)
        if not content.exists():
            raise UsageError(f"{content}: no such file or folder")
        clip_kind(content)
    except ImageError as e:
        raise UsageError(str(e)) from None
    inputs = Inputs.of(args).paths + run_pictures.mask_paths(args)
    for p in inputs:
        if p.exists() and out.exists() and out.resolve() == p.resolve():
            raise UsageError(f"{out}: refusing to overwrite an input")
    if out_kind == "folder" and out.is_dir() and any(out.iterdir()):
        raise UsageError(f"{out}: the output folder is not empty")
    if out.is_file() and not os.access(out, os.W_OK):
        raise UsageError(f"{out}: exists and is read-only; not replacing it")
    common.ensure_writable_dir(out if out_kind == "folder" else out.parent)
    _check_masks(args)
    work = Work(out.with_name(out.name + ".work"))
    work.check(settings_of(args), resume=args.resume)
    return out, work, gaps


def _check_masks(args) -> None:
    if args.style_mask is not None and len(args.style_mask) != len(args.style):
        raise UsageError(f"--style-mask: {len(args.style_mask)} mask(s) for {len(args.style)} "
                         "style image(s); give one mask per style image")
    if args.mask_mode is not None and args.style_mask is None and args.content_mask is None:
        raise UsageError("--mask-mode needs --style-mask or --content-mask")
    for path in run_pictures.mask_paths(args):
        if not path.is_file():
            raise UsageError(f"{path}: no such mask file")


def _load(args, size):
    """``(clip, [styles])``, every frame at long edge ``size``."""
    try:
        clip = read_clip(args.content, size=size, max_frames=args.max_frames, fps=args.fps)
        style_size = common.style_size_of(args, size)
        styles = [load_image(s, size=style_size) for s in args.style]
    except ImageError as e:
        raise UsageError(str(e)) from None
    if len(clip.frames) < 2:
        print("note: the clip has one frame: no temporal coupling", file=sys.stderr)
    need = HOST_COPIES * clip.frames.size * 4
    if args.mode == "multipass" and need > memory.available_bytes():
        raise UsageError(f"{len(clip.frames)} frames of {clip.frames.shape[2]}×"
                         f"{clip.frames.shape[1]} need {need / 2**30:.1f} GiB for the "
                         "multi-pass algorithm: lower --size or --max-frames")
    return clip, styles


def run(args) -> int:
    """The body of ``nstjax video``; returns the exit code."""
    out, work, gaps = _check(args)
    size = common.size_of(args)
    objective, mix = common.build_objective(args)
    solver = common.build_solver(args)
    check_solver(objective, solver.optimizer)
    weights = stylize.build_weights(args, objective, mix, len(args.style))
    if multipass.frames_that_fit(size, size, objective, history_size=solver.history_size) < 1:
        raise UsageError(f"a {size}-pixel frame does not fit in memory: lower --size")
    common.enable_compilation_cache()
    session = session_of(args, "video", protect=Inputs.of(args).paths)
    clip, styles = _load(args, size)
    plan, members = _plan_memory(args, clip, styles, objective, solver, gaps)
    vgg = common.load_vgg(args.weights)
    note = lambda m: print(f"note: {m}", file=sys.stderr)  # noqa: E731
    work.create()
    flows = cached_flows(clip.frames, work.flow_path, method=args.flow,
                         gaps=set(gaps) | {1}, log=note)
    session.loaded()
    kw = _library_kwargs(args, clip, objective, weights, solver, gaps, work, session)
    n, h, w = clip.frames.shape[:3]
    total = n * (solver.max_iter if args.mode != "multipass"
                 else args.passes * (args.pass_iters or max(1, solver.max_iter // args.passes)))
    session.start(total, "video", f"video: {n} frames of {w}×{h}, {args.mode}, "
                  f"{solver.optimizer} (the first frame compiles first)")
    result = session.solve(lambda: nstjax.stylize_video(vgg, clip.frames, styles, flows=flows,
                                                        **kw))
    result = work.merged(result)
    finished = result.done == n and result.passes >= (args.passes if args.mode == "multipass"
                                                      else 1)
    record = _record(args, out, session, result, objective, solver, weights, clip, finished)
    record["memory"] = plan.record(members, peak=memory.measured_peak_bytes())
    if not finished:
        common.write_json(work.record_path, record)
        print(f"note: {result.done if args.mode != 'multipass' else result.passes} "
              f"{'frames' if args.mode != 'multipass' else 'passes'} kept in {work.path}; "
              "--resume continues", file=sys.stderr)
        return session.finish(f"nothing to {out} yet", [result.status], what="a frame")
    with output_unit():
        write_clip(out, result.frames, clip.fps,
                   audio_from=clip.source if clip.audio and clip_kind(out) == "video" else None,
                   log=note)
        common.write_json(out.with_name(out.name + ".json"), record)
    work.clean()
    return session.finish(f"{out}", [result.status], what="a frame",
                          details=f"{n} frames of {w}×{h}, {args.mode}, temporal error "
                                  f"{result.temporal_error:.3g}")


def _plan_memory(args, clip, styles, objective, solver, gaps):
    """``(plan, members)``: the run's memory plan from the command line's decision
    (:func:`nstjax.run.transfer_memory.plan_transfer`) for the frames solved at once (one;
    under multipass the chunk), with the clip's optical flows (two float32 channels per
    pixel for each frame and gap) added to what the process holds; one line and exit 2 when
    it would not fit, before any flow is computed."""
    n, h, w = clip.frames.shape[:3]
    members = 1
    if args.mode == "multipass":
        fit_frames = multipass.frames_that_fit(h, w, objective,
                                               history_size=solver.history_size)
        members = max(1, min(args.chunk or n, fit_frames, n))
    flow_bytes = 2 * 4 * n * h * w * (len(set(gaps) | {1}))
    available = max(memory.available_bytes() - flow_bytes, 0)
    fit = plan_transfer(objective, solver, (h, w), [s.shape[:2] for s in styles],
                        available=available, members=members, remat_auto=False)
    if not fit.fits:
        largest = largest_edge(fit.need, fit.budget, max(h, w))
        fits = (f"the largest that fits is --size {largest}" if largest >= MIN_SIZE
                else "no size fits")
        block = " (or --remat block)" if objective.remat == "none" else ""
        raise UsageError(f"{does_not_fit(fit, (h, w))}; {fits}{block}")
    plan = fit.plan._replace(resident=fit.plan.resident + flow_bytes,
                             available=fit.plan.available + flow_bytes)
    return plan, members


def _library_kwargs(args, clip, objective, weights, solver, gaps, work, session) -> dict:
    """The keyword arguments of :func:`nstjax.stylize_video` from the flags and the work
    kept so far."""
    n = len(clip.frames)
    kw = dict(key=common.prng_key(args.seed), mode=args.mode, objective=objective,
              weights=weights, solver=solver, temporal_weight=args.temporal_weight,
              long_term=gaps, passes=args.passes, pass_iters=args.pass_iters,
              blend=args.blend, chunk=args.chunk, init=_init(args, clip),
              preserve_color=args.preserve_color, color_match=args.color_match or "cholesky",
              callbacks=session.callbacks(), on_frame=_staged(work.save_frame, session, n),
              on_checkpoint=_staged(work.save_checkpoint, session, n, args.passes),
              **run_pictures.mask_arguments(args, clip.frames.shape[1:3]))
    if args.resume:
        kw.update(done=work.done_frames(clip.frames.shape), checkpoint=work.checkpoint())
    return kw


def _staged(save, session, n: int, passes: int = 0):
    """``save`` (a frame or a checkpoint), then the progress bar's label: where the run is."""
    def saved(*a):
        save(*a)
        if passes:
            state = a[0]
            session.stage = f"pass {min(state['pass'] + 1, passes)}/{passes}"
        else:
            session.stage = f"frame {min(a[0] + 2, n)}/{n}"
    return saved


def _init(args, clip):
    init = args.init or "content"
    if init in INITS:
        return init
    try:
        return load_image(init, shape=clip.frames.shape[1:3])
    except ImageError as e:
        raise UsageError(str(e)) from None


def _record(args, out, session, result, objective, solver, weights, clip, finished) -> dict:
    n, h, w = clip.frames.shape[:3]
    per_frame = [{"loss": float(result.losses[i]), "iterations": int(result.n_iter[i]),
                  "seconds": float(result.seconds[i]),
                  "terms": {k: float(v[i]) for k, v in result.terms.items()}}
                 for i in range(n)]
    seconds = result.seconds[np.isfinite(result.seconds) & (result.seconds > 0)]
    return session.record(
        output=str(out), **common.config_record(objective, solver),
        loss_weights=weights._asdict(),
        mode=args.mode, frames=n, frame_size=[int(w), int(h)], fps=float(clip.fps),
        source_audio=clip.audio, flow=args.flow, device=str(jax.devices()[0]),
        finished=finished, frames_done=int(result.done), passes_done=int(result.passes),
        status=nstjax.Status(int(result.status)).name.lower(),
        temporal_error=float(result.temporal_error),
        frame_temporal_errors=np.asarray(result.frame_errors),
        seconds_per_frame=float(np.mean(seconds)) if seconds.size else None,
        per_frame=per_frame)
