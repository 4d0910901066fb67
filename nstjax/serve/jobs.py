"""One run at a time: the studio's worker thread.

:class:`Runner` refuses a second run while one computes (:class:`Busy`, shown in the page
as such) rather than queueing it: the user sees at once why nothing starts, and a
forgotten queue never keeps the machine busy.  The network is loaded once, on the first
run, and kept; the compiled programs are JAX's, reused by every later run of the same
shapes and objective (and kept across servers by the persistent compilation cache).  A
run belongs to the server, not to a page: closing the page leaves it running, and any page
opened later sees it.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import nstjax
from nstjax.io.image import MIN_SIZE
from nstjax.io.pictures import label
from nstjax.run import memory, nnst_memory
from nstjax.run.memory_plan import MemoryPlan
from nstjax.run.nnst import scale_count
from nstjax.run.presets import PRESETS
from nstjax.run.resolve import stylize_run
from nstjax.run.result import TransferResult
from nstjax.run.sweeps import member_settings
from nstjax.run.transfer_memory import does_not_fit, largest_edge, plan_transfer
from nstjax.serve import records
from nstjax.serve.events import Hub
from nstjax.serve.live import Live
from nstjax.serve.settings import RunSettings


class Busy(RuntimeError):
    """A run is computing; the next is refused until it ends or is stopped."""


def one_line(error: BaseException) -> str:
    """An error as one line for the page (never a stack trace)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, (ValueError, OSError)) else f"{type(error).__name__}: {text}"


class Runner:
    """Runs the studio's work, one piece at a time, in a thread of its own.

    Args:
      hub: where the pages listen.
      runs: the folder of run folders.
      load_vgg: ``() -> VGGWeights``, called once, at the first run.
    """

    def __init__(self, hub: Hub, runs, *, load_vgg: Callable):
        self.hub, self.runs, self._load_vgg = hub, runs, load_vgg
        self._vgg = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running = False
        self.stop_event = threading.Event()

    def busy(self) -> bool:
        return self._running       # set last in submit, cleared as the end is announced

    def submit(self, kind: str, work: Callable, *, total: int, labels=()) -> str:
        """Start ``work(vgg, folder, live) -> (message, files)`` in a new run folder; its id.

        Raises:
          Busy: a run is computing.
        """
        with self._lock:
            if self._running:
                raise Busy(self.busy_message())
            stop_event = threading.Event()
            folder = records.new_run_folder(self.runs, kind)    # OSError: nothing started
            live = Live(self.hub, stop_event, labels=labels)
            thread = threading.Thread(target=self._run, args=(work, folder, live),
                                      name=f"nstjax-{folder.name}", daemon=True)
            self.hub.reset(status="running", kind=kind, id=folder.name, total=total,
                           n_members=len(labels), message="starting (the first run of a "
                           "size compiles first)")
            try:
                thread.start()
            except BaseException as e:      # no thread: not busy, and the page says why
                self.hub.publish("status", {"status": "failed", "message": one_line(e)},
                                 status="failed", message=one_line(e))
                raise
            self.stop_event, self._thread, self._running = stop_event, thread, True
            return folder.name

    def busy_message(self) -> str:
        state = self.hub.snapshot()
        return (f"a {state['kind'] or 'run'} is computing ({state['id']}, iteration "
                f"{state['iteration']} of {state['total']}); stop it or wait for it to end")

    def stop(self) -> bool:
        """Ask the running work to stop after its current chunk; False when none runs.
        Under the lock: "stopping" is never announced after the run's end, and never stops
        the next run."""
        with self._lock:
            if not self._running:
                return False
            self.stop_event.set()
            self.hub.publish("status", {"status": "stopping", "message": "stopping after "
                                        "the current chunk of iterations"}, status="stopping")
            return True

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def vgg(self):
        if self._vgg is None:
            self._vgg = self._load_vgg()
        return self._vgg

    def _run(self, work, folder, live: Live) -> None:
        try:
            message, files = work(self.vgg(), folder, live)
            status = "stopped" if live.stop_event.is_set() else "done"
            final = {"status": status, "message": message, "files": files}
        except Exception as e:          # noqa: BLE001 - every failure is shown in the page
            final = {"status": "failed", "message": one_line(e)}
        with self._lock:                # not busy from the moment the end is announced
            self._running = False
            self.hub.publish("status", final, **final)


def plan_memory(content, style, settings: RunSettings) -> tuple[MemoryPlan | None, str | None]:
    """``(plan, None)`` for a run of the page that fits in memory, ``(None, line)`` with the
    command line's refusal for one that does not, decided before any work by
    :func:`nstjax.run.transfer_memory.plan_transfer` at the run's full size (a ladder's last
    rung; a sweep's members are solved one at a time), or for NNST by
    :func:`nstjax.run.nnst_memory.check_nnst`."""
    shape = tuple(content.shape[:2])
    if settings.preset and PRESETS[settings.preset].method == "nnst":
        nnst_fit = nnst_memory.check_nnst(shape, tuple(style.shape[:2]))
        if nnst_fit.fits:
            return nnst_fit.plan, None
        largest = largest_edge(nnst_fit.need, nnst_fit.budget, max(shape))
        fits = (f"the largest size that fits is {largest}" if largest >= MIN_SIZE
                else "no size fits")
        return None, f"{nnst_memory.does_not_fit(nnst_fit, shape)}; {fits}"
    fit = plan_transfer(settings.objective, settings.solver, shape, [tuple(style.shape[:2])],
                        remat_auto=False)
    if fit.fits:
        return fit.plan, None
    largest = largest_edge(fit.need, fit.budget, max(shape))
    fits = (f"the largest size that fits is {largest}" if largest >= MIN_SIZE
            else "no size fits")
    return None, f"{does_not_fit(fit, shape)}; {fits}"


def _memory_record(plan: MemoryPlan | None) -> dict | None:
    """``{planned_bytes, peak_bytes, available_bytes}`` with the peak measured since the
    run began (:func:`nstjax.run.memory.start_peak`)."""
    return None if plan is None else plan.record(peak=memory.run_peak_bytes())


def stylize_work(content, style, settings: RunSettings, inputs: dict,
                 plan: MemoryPlan | None = None) -> Callable:
    """The work of a single run: :func:`nstjax.stylize` (a preset's ladder:
    :func:`nstjax.stylize_multiscale`; ``nnst``: :func:`nstjax.nnst`), then its files."""
    def work(vgg, folder, live):
        memory.start_peak()
        started = time.perf_counter()
        result = _solve(vgg, content, style, settings, settings.weights, live)
        live.finish()
        live.snapshot(int(result.n_iter), np.asarray(result.image))    # the final picture
        timings = {"first_picture": live.first_picture_s,
                   "solve_including_compile": time.perf_counter() - started}
        records.write_run(folder, result, settings, inputs, image_size=content.shape[1::-1],
                          timings=timings, memory=_memory_record(plan))
        n = int(result.n_iter)
        return (f"{n} iterations, loss {float(result.loss):.4g}, "
                f"{timings['solve_including_compile']:.1f} s", records.files_of(folder))
    return work


def _solve(vgg, content, style, settings: RunSettings, weights, live) -> TransferResult:
    """The run through :func:`nstjax.stylize_run` (``--preset nnst``'s result as a
    :class:`TransferResult`, with no loss terms)."""
    run = settings.run
    if run.method != "nnst":
        return stylize_run(vgg, content, style, run,
                           callbacks=live.callbacks(run.iterations))
    total = run.nnst_arguments()["iters"] * (scale_count(max(content.shape[:2])) + 1)
    r = stylize_run(vgg, content, style, run, callbacks=live.callbacks(total))
    status = nstjax.Status.INTERRUPTED if r.stopped else nstjax.Status.MAX_ITER
    return TransferResult(image=r.image, loss=jnp.float32(r.loss), history=r.history,
                          n_iter=jnp.int32(r.n_iter), status=jnp.int32(status), terms={},
                          weights=weights)


def sweep_labels(values: dict) -> list[str]:
    """Each member's label, in :func:`nstjax.sweep`'s order (grid)."""
    swept = [k for k, v in values.items() if len(v) > 1]
    return [", ".join(label(k, m[k]) for k in swept)
            for m in member_settings(values, mode="grid")]


def sweep_work(content, style, settings: RunSettings, inputs: dict,
               plan: MemoryPlan | None = None) -> Callable:
    """The work of a sweep, one member per compiled call, so the sheet fills in member by
    member."""
    swept = [k for k, v in settings.sweep.items() if len(v) > 1]

    def work(vgg, folder, live):
        memory.start_peak()
        started = time.perf_counter()
        res = nstjax.sweep(vgg, content, style, settings.sweep,
                           key=jax.random.PRNGKey(settings.seed), objective=settings.objective,
                           weights=settings.weights, solver=settings.solver, init=settings.init,
                           mode="grid", chunk=1,
                           callbacks=live.callbacks(settings.solver.max_iter))
        timings = {"sweep_including_compile": time.perf_counter() - started}
        records.write_sweep(folder, res, settings, inputs, swept=swept,
                            image_size=content.shape[1::-1], timings=timings,
                            memory=_memory_record(plan))
        return (f"{len(res.images)} of {len(sweep_labels(settings.sweep))} members, best loss "
                f"{float(np.nanmin(res.loss)):.4g}, {timings['sweep_including_compile']:.1f} s",
                records.files_of(folder))
    return work
