"""``nstjax stylize --preset nnst``: Neural Neighbor Style Transfer (:func:`nstjax.nnst`)
with the command's inputs, outputs, progress, Ctrl-C and sidecar."""

from __future__ import annotations

import numpy as np

import nstjax
from nstjax.cli import common, memory_check
from nstjax.cli.common import UsageError
from nstjax.cli.session import plural, session_of
from nstjax.io.image_writing import output_unit
from nstjax.run import memory
from nstjax.run.nnst import nnst, scale_count


def check(args) -> None:
    """NNST's own flags, before any work: one style, ``--content-weight`` in [0, 1]."""
    if not args.demo and len(args.style) != 1:
        raise UsageError("--preset nnst takes one style image")
    if not 0.0 <= args.content_weight <= 1.0:
        raise UsageError(f"--preset nnst: --content-weight is the share of the current image "
                         f"in the neighbour search, in [0, 1], not {args.content_weight}")
    if args.lr is not None and not 0.0 < args.lr < float("inf"):
        raise UsageError(f"--lr must be a positive number, not {args.lr}")


def run(args, out, inputs, write_result) -> int:
    """The run and its files (``write_result``: stylize's writer of the image and the
    demo's inputs; then the sidecar)."""
    check(args)
    common.enable_compilation_cache()      # first: the memory plan's compiles are kept
    plan = memory_check.check_nnst_memory(inputs, memory_check.available_memory(args),
                                          memory_check.allows(args))
    session = session_of(args, "stylize", protect=inputs.paths)
    content, styles, alpha = inputs.load(alpha=True)
    vgg = common.load_vgg(inputs.weights)
    session.loaded()
    h, w = content.shape[:2]
    scales = scale_count(max(h, w))
    total = args.iters * (scales + 1)
    session.start(total, "stylize", f"stylize (nnst): {w}×{h}, {scales} scales and the last "
                  f"pass, {plural(args.iters, 'step')} each (the first run at a size "
                  "compiles first)")

    def snapshot(i, x):
        if x.shape == content.shape:
            session.save_snapshot(out.with_name(f"{out.stem}_{i:05d}{out.suffix}"), x)

    callbacks = session.callbacks(snapshot=snapshot if args.save_every else None,
                                  snapshot_every=args.save_every or 0)
    result = session.solve(lambda: nnst(
        vgg, content, styles[0], key=inputs.key(), iters=args.iters, lr=args.lr,
        alpha=1.0 - args.content_weight, scales=scales, callbacks=callbacks))
    with output_unit():
        written = write_result(out, result.image, inputs, args.bit_depth, alpha, content,
                               styles)
        record = session.record(
            with_snapshots=True, output=str(out), method="nnst",
            nnst={"steps_per_pass": int(args.iters), "lr": float(args.lr),
                  "content_weight": float(args.content_weight), "scales": scales,
                  "pass_sizes": [[int(b), int(a)] for a, b in result.sizes]},
            image_size=[int(w), int(h)], iterations=int(result.n_iter),
            status="interrupted" if result.stopped else "max_iter",
            final_loss=float(result.loss), loss_history=result.history,
            memory=plan.record(peak=memory.measured_peak_bytes()))
        common.write_json(written[1], record)
    status = (nstjax.Status.INTERRUPTED if result.stopped else nstjax.Status.MAX_ITER
              if np.isfinite(result.loss) else nstjax.Status.NON_FINITE)
    return session.finish(written, [int(status)], what="the run",
                          details=f"{w}×{h}, {plural(int(result.n_iter), 'step')}, "
                                  f"last loss {float(result.loss):.4g}")
