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

import numpy as np

from nstjax.cli import common, run_pictures, tiles
from nstjax.cli.common import UsageError
from nstjax.cli.interruption import Interruption


def add_arguments(p) -> None:
    common.add_input_args(p)
    out = p.add_argument_group("outputs")
    out.add_argument("--output", help="output image (format from the extension)")
    out.add_argument("--save-every", type=int, default=0,
                     help="also write <output stem>_<iter><ext> every N iterations")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    out.add_argument("--bit-depth", type=int, choices=(8, 16), default=8,
                     help="bits per channel of the output image (16: PNG only; default 8)")
    c = p.add_argument_group("colour and coarse-to-fine (Gatys et al. 2017 §5; multi-resolution)")
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
                   "last result upsampled (default: one scale)")
    c.add_argument("--scale-iters", nargs="+", help="iterations per size with --min-size: "
                   "one value, or one per size, coarse first (default --iters at every size)")
    w = p.add_argument_group("loss weights (traced: changing these does not recompile)")
    w.add_argument("--content-weight", type=float, help="α (default 1)")
    w.add_argument("--style-weight", type=float, help="β, seed 003's balance factor γ "
                   "(default 100: clearly stylised, the content recognisable, at every size)")
    w.add_argument("--tv-weight", type=float, help="τ, total variation (default 0)")
    w.add_argument("--style-layer-weights", nargs="+", help="one per style layer (default 1)")
    w.add_argument("--content-layer-weights", nargs="+",
                   help="one per content layer (default 1)")
    w.add_argument("--style-blend", nargs="+", help="weights of the style images, "
                   "normalised to sum to 1 (default equal)")
    w.add_argument("--hyper", nargs="+", help="style-method hyper-parameters, e.g. "
                   "mmd-poly.c=0 mmd-gauss.sigma2=2")
    run_pictures.add_arguments(p)
    tiles.add_arguments(p)
    common.add_objective_args(p)
    common.add_solver_args(p)


def hyper_values(items) -> dict:
    out = {}
    for item in common.words(items):
        name, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"--hyper: expected METHOD.PARAM=VALUE, got {item!r}")
        try:
            out[name] = float(value)
        except ValueError:
            raise UsageError(f"--hyper {name}: not a number: {value!r}") from None
    return out


def build_weights(args, objective, mix, n_styles: int):
    """:func:`nstjax.loss_weights` from the flags (the library validates)."""
    from nstjax.objective.config import loss_weights
    kw = {"style_mix": mix}
    for name in ("content_weight", "style_weight", "tv_weight"):
        if getattr(args, name, None) is not None:
            kw[name] = getattr(args, name)
    for name in ("style_layer_weights", "content_layer_weights", "style_blend"):
        kw[name] = common.numbers(getattr(args, name, None), "--" + name.replace("_", "-"))
    return loss_weights(objective, n_styles=n_styles, hyper=hyper_values(args.hyper), **kw)


def _check(args):
    common.check_inputs_given(args)
    if args.output is None:
        raise UsageError("give --output (the image to write)")
    if args.save_every < 0:
        raise UsageError("--save-every must be >= 0")
    if args.transfer_color_only and args.preserve_color:
        raise UsageError("--transfer-color-only and --preserve-color are opposites: give one")
    if args.transfer_color_only and not args.demo and len(args.style) != 1:
        raise UsageError("--transfer-color-only takes one style image")
    if args.scale_iters is not None and args.min_size is None:
        raise UsageError("--scale-iters needs --min-size (the coarse-to-fine ladder)")
    tiles.parse(args)
    out = Path(args.output)
    common.refuse_overwriting_inputs([out], common.input_paths(args))
    common.check_output(out, common.input_paths(args), bit_depth=args.bit_depth)
    run_pictures.check(args, out)
    return out


def _ladder(args, size: int, solver):
    """``(long edges, iterations per rung)`` of ``--min-size``/``--scale-iters`` (validated
    before any work), or ``None`` for a single-scale run."""
    if args.min_size is None:
        return None
    from nstjax.run import multiscale
    ladder = multiscale.size_ladder(args.min_size, size)
    iters = common.numbers(args.scale_iters, "--scale-iters") or (solver.max_iter,)
    if any(i != int(i) for i in iters):
        raise UsageError("--scale-iters: whole numbers of iterations, please")
    iters = [int(i) for i in iters]
    return ladder, multiscale.scale_iterations(iters[0] if len(iters) == 1 else iters,
                                               len(ladder))


def _color_only(args, out, content, styles, alpha, t_start) -> int:
    """``--transfer-color-only``: the content recoloured to the style's colour statistics."""
    from nstjax.run import color
    image = np.asarray(color.match_color(content, styles[0], method=args.color_match
                                         or "cholesky", clip=True))
    save_image_checked(out, image, args, alpha)
    common.write_json(out.with_name(out.name + ".json"), {
        "command": "stylize", "arguments": common.arguments_record(args), "output": str(out),
        "image_size": [int(content.shape[1]), int(content.shape[0])],
        "timings_s": {"total": round(time.perf_counter() - t_start, 3)}})
    print(f"wrote {out} (colours of the style, no style transfer)", file=sys.stderr)
    return 0


def save_image_checked(out, image, args, alpha=None) -> None:
    from nstjax.io.image_writing import save_image
    save_image(out, image, protect=common.input_paths(args), bit_depth=args.bit_depth,
               alpha=alpha)


def run(args) -> int:
    """The body of ``nstjax stylize``; returns the exit code."""
    out = _check(args)
    size = common.size_of(args)
    objective, mix = common.build_objective(args)
    solver = common.build_solver(args)
    from nstjax.objective.terms import check_solver
    check_solver(objective, solver.optimizer)     # before any work, not after the weights
    n_styles = 1 if args.demo else len(args.style)
    weights = build_weights(args, objective, mix, n_styles)   # validated before any work
    ladder = _ladder(args, size, solver)
    common.enable_compilation_cache()      # first: the memory check's compile is kept
    objective = tiles.check_memory(args, objective, size)   # may pick --remat, --tile

    import jax
    import jax.numpy as jnp

    import nstjax
    from nstjax.io.image import ImageError, load_image
    from nstjax.io.image_writing import can_hold_alpha, save_image

    t_start = time.perf_counter()
    content, styles, alpha = common.load_inputs(args, size, alpha=True)
    h, w = content.shape[:2]
    if alpha is not None and not can_hold_alpha(out):
        print(f"note: {out.suffix} has no alpha channel: the content's transparency is "
              "dropped (composited over white); write .png to keep it", file=sys.stderr)
        alpha = None
    init = args.init or "content"
    if init not in ("content", "noise", "style", "grey"):
        size_init = common.header_size(init)
        if abs((size_init[0] / size_init[1]) / (w / h) - 1) > 0.02:
            raise UsageError(f"{init}: --init image is {size_init[0]}×{size_init[1]}, another "
                             f"aspect ratio than the {w}×{h} output; crop it to match")
        try:
            init = load_image(init, shape=content.shape[:2])
        except ImageError as e:
            raise UsageError(str(e)) from None
    if args.transfer_color_only:
        return _color_only(args, out, content, styles, alpha, t_start)
    from nstjax.run import color
    preserve = args.preserve_color
    content_run, styles_run = color.prepare_inputs(
        content, styles, preserve=preserve, method=args.color_match or "cholesky")
    if preserve == "luminance" and not isinstance(init, str):
        init = color.luminance_image(init)
    vgg = common.load_vgg(args)
    t_loaded = time.perf_counter()
    if args.tile:
        return tiles.run(args, out, objective=objective, weights=weights, solver=solver,
                         content=content, content_run=content_run, styles_run=styles_run,
                         init=init, vgg=vgg, alpha=alpha, preserve=preserve,
                         t_start=t_start, t_loaded=t_loaded)

    bar = None
    if not args.no_progress:
        from tqdm import tqdm
        total = solver.max_iter if ladder is None else sum(ladder[1])
        sizes = "" if ladder is None else f" over sizes {', '.join(map(str, ladder[0]))}"
        print(f"stylize: {w}×{h}, {solver.optimizer}, {total} iterations{sizes} "
              "(the first run of a size compiles first; later runs reuse the cache)",
              file=sys.stderr)
        bar = tqdm(total=total, desc="stylize", unit="it", file=sys.stderr,
                   dynamic_ncols=True)

    def progress(i, value):
        if bar is not None:
            bar.n = i
            bar.set_postfix_str(f"loss {value:.4g}", refresh=True)

    protect = common.input_paths(args)
    snapshots, snapshot_errors = [], []

    def snapshot(i, x):
        path = out.with_name(f"{out.stem}_{i:05d}{out.suffix}")
        full = x.shape == content.shape
        if full:
            x = color.finish_output(x, content, preserve=preserve)
        try:
            save_image(path, x, protect=protect, alpha=alpha if full else None)
            snapshots.append(str(path))
        except (ImageError, OSError) as e:   # a failed snapshot must not lose the run
            snapshot_errors.append(str(e))

    mask_kw = run_pictures.mask_arguments(args, content.shape[:2])
    frames = run_pictures.Frames()       # for the animation and the loss curve
    period = run_pictures.frame_period(args, solver.max_iter if ladder is None
                                       else sum(ladder[1]))

    def keep_frame(i, x):
        frames(i, x)
        if args.save_every:
            snapshot(i, x)

    interruption = Interruption()
    callbacks = nstjax.Callbacks(progress=progress, snapshot=keep_frame, snapshot_every=period,
                                 should_stop=interruption.should_stop)
    run_kw = dict(key=jax.random.PRNGKey(args.seed or 0), objective=objective,
                  weights=weights, solver=solver, init=init, callbacks=callbacks, alpha=alpha,
                  **mask_kw)
    if ladder is None:
        solve = lambda: nstjax.stylize(  # noqa: E731
            vgg, jnp.asarray(content_run), [jnp.asarray(s) for s in styles_run], **run_kw)
    else:
        from nstjax.run.multiscale import stylize_multiscale
        solve = lambda: stylize_multiscale(  # noqa: E731
            vgg, jnp.asarray(content_run), [jnp.asarray(s) for s in styles_run],
            min_size=args.min_size, iters=ladder[1], **run_kw)
    result = interruption.run(solve)
    if bar is not None:
        bar.close()
    t_done = time.perf_counter()

    n_iter = int(result.n_iter)
    status = nstjax.Status(int(result.status))
    image = np.asarray(color.finish_output(result.image, content, preserve=preserve))
    save_image_checked(out, image, args, alpha)
    if args.demo:
        save_image(out.with_name(f"{out.stem}_demo_content.png"), content)
        save_image(out.with_name(f"{out.stem}_demo_style.png"), styles[0])
    record = {
        "command": "stylize",
        "arguments": common.arguments_record(args),
        "output": str(out),
        **common.config_record(objective, solver),
        "loss_weights": result.weights._asdict(),
        "image_size": [int(w), int(h)],
        "device": str(jax.devices()[0]),
        "iterations": n_iter,
        "status": status.name.lower(),
        "final_loss": float(result.loss),
        "final_terms": {k: float(v) for k, v in result.terms.items()},
        "loss_history": np.asarray(result.history)[:n_iter],
        "timings_s": {"load": round(t_loaded - t_start, 3),
                      "optimise_including_compile": round(t_done - t_loaded, 3),
                      "total": round(time.perf_counter() - t_start, 3)},
        "snapshots": snapshots,
        "scales": None if ladder is None else [
            {"size": [int(s[1]), int(s[0])], "iterations": int(r.n_iter),
             "final_loss": float(r.loss)} for s, r in zip(result.shapes, result.stages)],
        "snapshot_errors": snapshot_errors,
    }
    record.update(run_pictures.write(out, args, result, frames, mask_kw=mask_kw,
                                     protect=protect + run_pictures.mask_paths(args),
                                     period=period))
    common.write_json(out.with_name(out.name + ".json"), record)
    print(f"wrote {out} ({w}×{h}, {n_iter} iterations, loss {float(result.loss):.4g}, "
          f"{t_done - t_loaded:.1f} s{', interrupted' if interruption.signal else ''})",
          file=sys.stderr)
    if snapshot_errors:
        print(f"warning: {len(snapshot_errors)} snapshot(s) could not be written: "
              f"{snapshot_errors[0]}", file=sys.stderr)
    if interruption.exit_code is not None:
        return interruption.exit_code
    if status == nstjax.Status.NON_FINITE:
        print(f"warning: the loss became non-finite after iteration {n_iter}; stopped and "
              "kept the last finite image", file=sys.stderr)
        return common.EXIT_NON_FINITE
    return 0
