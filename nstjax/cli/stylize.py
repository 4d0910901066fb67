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

from nstjax.cli import common
from nstjax.cli.common import UsageError


def add_arguments(p) -> None:
    common.add_input_args(p)
    out = p.add_argument_group("outputs")
    out.add_argument("--output", help="output image (format from the extension)")
    out.add_argument("--save-every", type=int, default=0,
                     help="also write <output stem>_<iter><ext> every N iterations")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    w = p.add_argument_group("loss weights (traced: changing these does not recompile)")
    w.add_argument("--content-weight", type=float, help="α (default 1)")
    w.add_argument("--style-weight", type=float, help="β, seed 003's balance factor γ "
                   "(default 10)")
    w.add_argument("--tv-weight", type=float, help="τ, total variation (default 0)")
    w.add_argument("--style-layer-weights", nargs="+", help="one per style layer (default 1)")
    w.add_argument("--content-layer-weights", nargs="+",
                   help="one per content layer (default 1)")
    w.add_argument("--style-blend", nargs="+", help="weights of the style images, "
                   "normalised to sum to 1 (default equal)")
    w.add_argument("--hyper", nargs="+", help="style-method hyper-parameters, e.g. "
                   "mmd-poly.c=0 mmd-gauss.sigma2=2")
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
    from nstjax.config import loss_weights
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
    out = Path(args.output)
    common.refuse_overwriting_inputs([out], common.input_paths(args))
    common.check_output(out, common.input_paths(args))
    return out


def run(args) -> int:
    """The body of ``nstjax stylize``; returns the exit code."""
    out = _check(args)
    size = common.size_of(args)
    objective, mix = common.build_objective(args)
    solver = common.build_solver(args)
    n_styles = 1 if args.demo else len(args.style)
    weights = build_weights(args, objective, mix, n_styles)   # validated before any work
    common.check_memory(args, objective, size)
    common.enable_compilation_cache()

    import jax
    import jax.numpy as jnp

    import nstjax
    from nstjax.image import ImageError, load_image, save_image

    t_start = time.perf_counter()
    content, styles = common.load_inputs(args, size)
    h, w = content.shape[:2]
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
    vgg = common.load_vgg(args)
    t_loaded = time.perf_counter()

    bar = None
    if not args.no_progress:
        from tqdm import tqdm
        print(f"stylize: {w}×{h}, {solver.optimizer}, {solver.max_iter} iterations "
              "(the first run of a size compiles first; later runs reuse the cache)",
              file=sys.stderr)
        bar = tqdm(total=solver.max_iter, desc="stylize", unit="it", file=sys.stderr,
                   dynamic_ncols=True)

    def progress(i, value):
        if bar is not None:
            bar.n = i
            bar.set_postfix_str(f"loss {value:.4g}", refresh=True)

    protect = common.input_paths(args)
    snapshots, snapshot_errors = [], []

    def snapshot(i, x):
        path = out.with_name(f"{out.stem}_{i:05d}{out.suffix}")
        try:
            save_image(path, x, protect=protect)
            snapshots.append(str(path))
        except (ImageError, OSError) as e:   # a failed snapshot must not lose the run
            snapshot_errors.append(str(e))

    interruption = common.Interruption()
    callbacks = nstjax.Callbacks(progress=progress, snapshot=snapshot if args.save_every else None,
                                 snapshot_every=args.save_every,
                                 should_stop=interruption.should_stop)
    result = interruption.run(lambda: nstjax.stylize(
        vgg, jnp.asarray(content), [jnp.asarray(s) for s in styles],
        key=jax.random.PRNGKey(args.seed or 0), objective=objective, weights=weights,
        solver=solver, init=init, callbacks=callbacks))
    if bar is not None:
        bar.close()
    t_done = time.perf_counter()

    n_iter = int(result.n_iter)
    status = nstjax.Status(int(result.status))
    save_image(out, np.asarray(result.image), protect=protect)
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
        "snapshot_errors": snapshot_errors,
    }
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
