"""``nstjax stylize``: one style transfer, a thin shell over :func:`nstjax.stylize`.

Writes the image (format from the extension) and ``<output>.json``, the sidecar: every
argument (give it back with ``--config`` to repeat the run), the resolved objective, loss
weights and solver, timings, status and the loss history, as strict JSON.  Ctrl-C or
SIGTERM stops the solve after the current iteration and saves what it has (exit 130/143).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import nstjax
from nstjax.cli import common, counts, memory_check, run_pictures, tiles
from nstjax.cli.common import UsageError
from nstjax.cli.inputs import Inputs
from nstjax.cli.session import plural, session_of
from nstjax.io.image import ImageError, load_image
from nstjax.io.image_writing import can_hold_alpha, output_unit, save_image
from nstjax.objective.config import loss_weights
from nstjax.run import color, memory, multiscale
from nstjax.run.resolve import resolve, stylize_run, weights_kwargs
from nstjax.run.spec import WEIGHT_FIELDS, RunSpec
from nstjax.run.start import INITS

DEFAULT_MIN_SIZE = multiscale.DEFAULT_MIN_SIZE
DEFAULT_SCALE_ITERS = multiscale.DEFAULT_SCALE_ITERS


def add_arguments(p) -> None:
    common.add_input_args(p)
    out = p.add_argument_group("outputs")
    out.add_argument("--output", help="output image (format from the extension)")
    out.add_argument("--save-every", type=counts.count, default=0,
                     help="also write <output stem>_<iter><ext> every N iterations")
    common.add_progress_args(out)
    out.add_argument("--web", "--serve", action="store_true", help="watch the run live in a "
                     "browser: prints the address of nstjax serve's page (127.0.0.1 only)")
    out.add_argument("--bit-depth", type=int, choices=(8, 16), default=8,
                     help="bits per channel of the output image (16: PNG only; default 8)")
    c = p.add_argument_group("colour and coarse-to-fine (Gatys et al. 2017)")
    c.add_argument("--preserve-color", choices=("luminance", "histogram"),
                   help="keep the content's colours: transfer the luminance only and keep the "
                   "content's chroma exactly, or first match the style's colour mean and "
                   "covariance to the content's")
    c.add_argument("--transfer-color-only", action="store_true",
                   help="no style transfer: recolour the content to the style's colour mean "
                   "and covariance")
    c.add_argument("--color-match", choices=("cholesky", "eigen"),
                   help="linear map of the colour matching: Cholesky, or the symmetric "
                   "image-analogies map (default cholesky)")
    c.add_argument("--min-size", type=int, help="coarse-to-fine: solve first at this long "
                   "edge, then at sizes up to --size about √2 apart, each started from the "
                   f"last result upsampled (default {DEFAULT_MIN_SIZE}, with "
                   f"{'/'.join(map(str, DEFAULT_SCALE_ITERS))} iterations at the first/"
                   "between/last size; one scale when --iters, --tile or a --size of "
                   f"{DEFAULT_MIN_SIZE} or less is given, or with --min-size equal to --size)")
    c.add_argument("--scale-iters", nargs="+", help="iterations per size of the ladder "
                   "(the default one, or --min-size's): one value, or one per size, coarse "
                   "first, the last repeating on the sizes after it (default: the default "
                   "ladder's; with --min-size, --iters at every size)")
    c.add_argument("--scale-factor", type=float, help="of the ladder: the largest ratio "
                   "of consecutive sizes (default √2; 2 as STROTSS)")
    c.add_argument("--add-detail", action="store_true", default=None,
                   help="of the ladder: start each size from the last result upsampled "
                   "plus the photo's detail that upsampling lost (STROTSS)")
    c.add_argument("--content-decay", type=float, help="of the ladder: the factor of the "
                   "content weight from one size to the next finer, the last size's being "
                   "--content-weight (default 1; 0.5 as STROTSS)")
    c.add_argument("--carry-moments", action="store_true", default=None,
                   help="of the ladder, with --optimizer adam: start each size's Adam with "
                   "the last size's moment estimates, resized")
    w = p.add_argument_group("loss weights (changing these does not recompile)")
    w.add_argument("--content-weight", type=float, help="how much the content's layout "
                   "counts, α (default 1)")
    w.add_argument("--style-weight", type=float, help="how strongly the style shows, β: "
                   "about 10 a light touch, 100 clear with the content recognisable "
                   "(default), 1000 and up the style dominates; the same at every size")
    w.add_argument("--tv-weight", type=float, help="τ, smooths single-pixel speckle: 0 off, "
                   "3 the default (0 with --content-loss sum), 30 and more visibly softer; "
                   "the same at every size")
    w.add_argument("--style-layer-weights", nargs="+", help="one per style layer (default 1)")
    w.add_argument("--content-layer-weights", nargs="+",
                   help="one per content layer (default 1)")
    w.add_argument("--style-blend", nargs="+", help="weights of the style images, "
                   "normalised to sum to 1 (default equal)")
    w.add_argument("--hyper", nargs="+", help="style-method hyper-parameters, e.g. "
                   "mmd-poly.c=0 mmd-gauss.sigma2=2")
    w.add_argument("--style-scales", nargs="+", help="λ, one per style method: the unit "
                   "each method's loss is multiplied by before the style weight (default: "
                   "the registry's, measured to balance the content; 1 is the method's own "
                   "value, as the classic tools weigh it)")
    run_pictures.add_arguments(p)
    tiles.add_arguments(p)
    memory_check.add_memory_args(p.add_argument_group("memory"))
    common.add_objective_args(p)
    common.add_solver_args(p, init_help="grey (ImageNet's mean pixel with a little noise, "
                           "as jcjohnson/neural-style; the default), content, noise, style, or "
                           "an image file")


def build_weights(args, objective, mix, n_styles: int):
    """:func:`nstjax.loss_weights` from the flags (checked by :mod:`nstjax.run.spec`)."""
    spec = RunSpec.from_arguments({k: getattr(args, k, None) for k in WEIGHT_FIELDS})
    return loss_weights(objective, n_styles=n_styles,
                        **weights_kwargs(spec, objective, mix, n_styles))


def _check(args, inputs):
    if args.output is None:
        raise UsageError("give --output (the image to write)")
    if args.save_every < 0:
        raise UsageError("--save-every must be >= 0")
    if args.transfer_color_only and args.preserve_color:
        raise UsageError("--transfer-color-only and --preserve-color are opposites: give one")
    if args.transfer_color_only and not args.demo and len(args.style) != 1:
        raise UsageError("--transfer-color-only takes one style image")
    tiling = tiles.parse(args)
    if args.web and (tiling or args.transfer_color_only):
        raise UsageError("--web shows a single-image solve: not with "
                         f"{'--tile' if tiling else '--transfer-color-only'}")
    out = Path(args.output)
    common.refuse_overwriting_inputs([out], inputs.paths)
    common.check_output(out, inputs.paths, bit_depth=args.bit_depth)
    run_pictures.check(args, out, inputs.paths)
    return out, tiling


def _color_only(args, out, inputs, content, styles, alpha, session) -> int:
    """``--transfer-color-only``: the content recoloured to the style's colour statistics."""
    image = np.asarray(color.match_color(content, styles[0], method=args.color_match
                                         or "cholesky", clip=True))
    save_image(out, image, protect=inputs.paths, bit_depth=args.bit_depth, alpha=alpha)
    common.write_json(out.with_name(out.name + ".json"), {
        "command": "stylize", "arguments": common.arguments_record(args), "output": str(out),
        "image_size": [int(content.shape[1]), int(content.shape[0])],
        "timings_s": {"total": round(time.perf_counter() - session.t_start, 3)}})
    print(f"wrote {out} (colours of the style, no style transfer)", file=sys.stderr)
    return 0


def write_result(out, image, inputs, bit_depth: int, alpha, content, styles) -> list:
    """The image and, with ``--demo``, the generated inputs beside it; the paths written,
    the sidecar's second (inside an ``output_unit``)."""
    save_image(out, np.asarray(image), protect=inputs.paths, bit_depth=bit_depth, alpha=alpha)
    written = [out, out.with_name(out.name + ".json")]
    if inputs.demo:
        written += [out.with_name(f"{out.stem}_content.png"),
                    out.with_name(f"{out.stem}_style.png")]
        save_image(written[-2], content)
        save_image(written[-1], styles[0])
    return written


def _output_alpha(out, alpha):
    """The content's opacity if ``out``'s format can hold it (else a note, and None)."""
    if alpha is not None and not can_hold_alpha(out):
        print(f"note: {out.suffix} has no alpha channel: the content's transparency is "
              "dropped (composited over white); write .png to keep it", file=sys.stderr)
        return None
    return alpha


def _init_image(init: str, content):
    """``--init``: a named start, or an image file loaded at the content's shape."""
    if init in INITS:
        return init
    h, w = content.shape[:2]
    size_init = common.header_size(init)
    if abs((size_init[0] / size_init[1]) / (w / h) - 1) > 0.02:
        raise UsageError(f"{init}: --init image is {size_init[0]}×{size_init[1]}, another "
                         f"aspect ratio than the {w}×{h} output; crop it to match")
    try:
        return load_image(init, shape=content.shape[:2])
    except ImageError as e:
        raise UsageError(str(e)) from None


def run(args) -> int:
    """The body of ``nstjax stylize``; returns the exit code."""
    common.check_inputs_given(args)
    inputs = Inputs.of(args)
    out, tiling = _check(args, inputs)
    size = inputs.size
    n_styles = 1 if args.demo else len(args.style)
    settings = resolve(RunSpec.from_arguments(vars(args)), n_styles=n_styles)  # before work
    if settings.method == "nnst":                                 # its own driver
        from nstjax.cli import nnst_run
        return nnst_run.run(args, out, inputs, write_result)
    common.enable_compilation_cache()      # first: the memory check's compile is kept
    fitted, tiling = tiles.check_memory(args, tiling, settings.objective, size)
    objective, plan = fitted.objective, fitted.plan     # --remat, --tile auto, a style size
    inputs = inputs._replace(style_size=fitted.style_size)
    settings = settings._replace(objective=objective)
    solver, ladder = settings.solver, settings.ladder

    session = session_of(args, "stylize", protect=inputs.paths)
    content, styles, alpha = inputs.load(alpha=True)
    alpha = _output_alpha(out, alpha)
    settings = settings._replace(init=_init_image(settings.init, content))
    if args.transfer_color_only:
        return _color_only(args, out, inputs, content, styles, alpha, session)
    vgg = common.load_vgg(inputs.weights)
    session.loaded()
    if tiling:
        run_kw = {"objective": objective, "weights": settings.weights, "solver": solver,
                  "init": settings.init, "preserve_color": settings.preserve_color,
                  "color_match": settings.color_match}
        return tiles.run(tiling, out, session, inputs=inputs, vgg=vgg, content=content,
                         styles=styles, alpha=alpha, plan=plan, bit_depth=args.bit_depth,
                         save_every=args.save_every, **run_kw)
    mask_kw = run_pictures.mask_arguments(args, content.shape[:2])
    period = run_pictures.frame_period(args, settings.iterations)
    result, frames = _solve(out, session, vgg, content, styles, alpha, settings,
                            mask_kw=mask_kw, period=period, save_every=args.save_every,
                            web=args.web)
    with output_unit():                 # the image, its sidecar and pictures: all or none
        written = write_result(out, result.image, inputs, args.bit_depth, alpha, content,
                               styles)
        record = _record(out, session, result, objective, solver, content, ladder)
        record.update(run_pictures.write(
            out, result, frames, mask_kw=mask_kw, period=period,
            protect=inputs.paths + run_pictures.mask_paths(args),
            style_masks=args.style_mask, content_mask=args.content_mask,
            animation=args.animation))
        record["memory"] = plan.record(peak=memory.measured_peak_bytes())
        common.write_json(written[1], record)
    written += [record.get("loss_curve"), (record.get("animation") or {}).get("path")]
    h, w = content.shape[:2]
    return session.finish(written, [int(result.status)], what="the run",
                          details=f"{w}×{h}, {plural(int(result.n_iter), 'iteration')}, "
                                  f"loss {float(result.loss):.4g}")


def _solve(out, session, vgg, content, styles, alpha, settings, *, mask_kw: dict,
           period: int, save_every: int, web: bool):
    """The library call, one size or a ladder (:func:`nstjax.run.resolve.stylize_run`),
    with ``mask_kw`` (its masks), an animation frame every ``period`` iterations, a snapshot
    every ``save_every`` and, with ``web``, the live page: ``(result, frames)``."""
    solver, ladder, total = settings.solver, settings.ladder, settings.iterations
    h, w = content.shape[:2]
    sizes = "" if ladder is None else \
        f" over sizes {', '.join(map(str, ladder.sizes(settings.size)))}"
    session.start(total, "stylize", f"stylize: {w}×{h}, {solver.optimizer}, "
                  f"{plural(total, 'iteration')}{sizes} (the first run at a size compiles "
                  "first, cached for next time)")
    frames = run_pictures.Frames()       # for the animation

    def keep_frame(i, x):
        frames(i, x)
        if save_every:
            full = x.shape == content.shape
            session.save_snapshot(out.with_name(f"{out.stem}_{i:05d}{out.suffix}"), x,
                                  alpha=alpha if full else None)

    kw = dict(alpha=alpha, **mask_kw,
              callbacks=session.callbacks(snapshot=keep_frame, snapshot_every=period))
    if web:
        from nstjax.cli import serve  # the web server only when asked for
        kw["callbacks"], web_done = serve.web_view(kw["callbacks"], total)
    content_j, styles_j = jnp.asarray(content), [jnp.asarray(s) for s in styles]
    result = None
    try:
        result = session.solve(lambda: stylize_run(vgg, content_j, styles_j, settings, **kw))
    finally:
        if web and result is None:
            web_done("the run failed (see the command's output)", failed=True)
        elif web:
            web_done(f"{plural(int(result.n_iter), 'iteration')}, loss {float(result.loss):.4g}")
    return result, frames


def _record(out, session, result, objective, solver, content, ladder) -> dict:
    """The sidecar of a solved run."""
    n_iter = int(result.n_iter)
    h, w = content.shape[:2]
    return session.record(
        with_snapshots=True, output=str(out), **common.config_record(objective, solver),
        loss_weights=result.weights._asdict(), image_size=[int(w), int(h)],
        device=str(jax.devices()[0]), iterations=n_iter,
        status=nstjax.Status(int(result.status)).name.lower(),
        final_loss=float(result.loss),
        final_terms={k: float(v) for k, v in result.terms.items()},
        loss_history=np.asarray(result.history)[:n_iter],
        scales=None if ladder is None else [
            {"size": [int(s.result.image.shape[1]), int(s.result.image.shape[0])],
             "iterations": int(s.result.n_iter), "final_loss": float(s.result.loss)}
            for s in result.stages])
