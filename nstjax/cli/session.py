"""One command's run, the part every solving subcommand shares.

A :class:`Session` owns the progress bar, Ctrl-C (:class:`Interruption`), the
:class:`nstjax.Callbacks` handed to the library, the timings, the sidecar's common part,
snapshot files and the exit code, so that ``stylize``, ``sweep``, ``invert`` and the tiled
``stylize`` keep only what is their own: their inputs, their library call and their
record.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import nstjax
from nstjax.cli import common
from nstjax.cli.compile_watch import CompileWatch
from nstjax.cli.interruption import Interruption
from nstjax.io.image import ImageError
from nstjax.io.image_writing import save_image
from nstjax.run.sidecar import Sidecar

DEFAULT_LOG_EVERY = 10     # plain progress lines in a log: one per this many iterations


def plural(n: int, word: str) -> str:
    """``"1 iteration"``, ``"2 iterations"``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def session_of(args, command: str, protect=()) -> "Session":
    """The :class:`Session` of a command's parsed flags (its ``run`` calls this; nothing
    below it sees the namespace)."""
    return Session(command, arguments=common.arguments_record(args), protect=protect,
                   progress=not getattr(args, "no_progress", False),
                   log_every=getattr(args, "log_every", None))


class Session:
    """The shared shell of a solve.
    Args:
      command: the subcommand's name, as the sidecar records it.
      arguments: the parsed flags as JSON values (:func:`nstjax.cli.common.arguments_record`),
        the sidecar's ``arguments``.
      protect: the run's input files, which no snapshot may overwrite.
      progress: show progress (``--no-progress`` turns it off).
      log_every: one plain line every this many iterations (``--log-every``).
    """
    def __init__(self, command: str, *, arguments: dict, protect=(), progress: bool = True,
                 log_every: int | None = None):
        self.command, self.arguments, self.protect = command, arguments, list(protect)
        self.show_progress, self.log_every_asked = progress, log_every
        self.interruption = Interruption()
        self.t_start = time.perf_counter()
        self.t_loaded = self.t_done = None
        self.bar = None
        self.log_every, self.logged, self.total, self.desc = 0, 0, 0, command
        self.stage = ""
        self.snapshots: list[str] = []
        self.snapshot_errors: list[str] = []
        self.compile_watch = CompileWatch()

    # ------------------------------------------------------------------ before the solve

    def loaded(self) -> None:
        """Mark the end of loading (images, weights): the solve's time starts here."""
        self.t_loaded = time.perf_counter()

    def start(self, total: int, desc: str, message: str) -> None:
        """Print ``message`` and open a progress bar of ``total`` iterations (unless
        ``--no-progress``); plain lines every ``--log-every`` iterations instead when that
        is given or stderr is not a terminal (a log file)."""
        if not self.show_progress:
            return
        if message:
            print(message, file=sys.stderr)
        self.total, self.desc = total, desc
        every = self.log_every_asked
        if every is None and not sys.stderr.isatty():
            every = max(1, min(DEFAULT_LOG_EVERY, total // 10 or 1))
        if every:
            self.log_every, self.logged = every, 0
            return
        self.bar = tqdm(total=total, desc=desc, unit="it", file=sys.stderr, dynamic_ncols=True)

    def progress(self, iterations, losses) -> None:
        """The library's progress callback: one solve ``(i, loss)`` or a batch (arrays)."""
        if self.bar is None and not self.log_every:
            return
        if np.ndim(iterations) == 0:
            text = f"loss {float(losses):.4g}"
        else:
            low, high = float(np.nanmin(losses)), float(np.nanmax(losses))
            text = f"best loss {low:.4g}, worst {high:.3g}"
        done = int(np.max(iterations))
        if self.bar is None:
            if done >= self.logged + self.log_every or done == self.total:
                self.logged = done
                seconds = time.perf_counter() - (self.t_loaded or self.t_start)
                print(f"{self.desc}: {done}/{self.total} {self.stage} {text} "
                      f"({seconds:.0f} s)".replace("  ", " "), file=sys.stderr, flush=True)
            return
        self.bar.n = done
        self.bar.set_postfix_str(f"{self.stage} {text}".strip(), refresh=True)

    def callbacks(self, *, snapshot=None, snapshot_every: int = 0):
        """:class:`nstjax.Callbacks` with this session's progress and stop request."""
        return nstjax.Callbacks(progress=self.progress, snapshot=snapshot,
                                snapshot_every=snapshot_every,
                                should_stop=self.interruption.should_stop)

    def save_snapshot(self, path: Path, image, **save_kw) -> None:
        """Write one snapshot; a failure is noted, never fatal (the run goes on)."""
        try:
            save_image(path, image, protect=self.protect, **save_kw)
            self.snapshots.append(str(path))
        except (ImageError, OSError) as e:
            self.snapshot_errors.append(str(e))

    # ------------------------------------------------------------------ the solve

    def solve(self, work):
        """``work()`` with Ctrl-C handled (stops after the current chunk); its result."""
        if self.t_loaded is None:
            self.loaded()
        self.compile_watch.say = self.say
        with self.compile_watch:
            result = self.interruption.run(work)
        if self.bar is not None:
            self.bar.close()
        self.t_done = time.perf_counter()
        return result

    def say(self, text: str, *, always: bool = False) -> None:
        """A line on stderr that leaves the progress bar whole; with ``--no-progress`` only
        when ``always``."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif self.log_every or always:
            print(text, file=sys.stderr, flush=True)

    @property
    def seconds(self) -> float:
        """The solve's wall time, compilation included."""
        return self.t_done - self.t_loaded

    # ------------------------------------------------------------------ after the solve

    def record(self, solve_name: str = "optimise_including_compile", *,
               with_snapshots: bool = False, **fields) -> dict:
        """The sidecar: the common part (command, arguments, timings and, for commands
        that write them, snapshots) and ``fields``."""
        now = time.perf_counter()
        out = Sidecar(self.command, self.arguments, {
            **fields,
            "timings_s": {"load": round(self.t_loaded - self.t_start, 3),
                          solve_name: round(self.seconds, 3),
                          "compile": round(self.compile_watch.seconds, 3),
                          "total": round(now - self.t_start, 3)},
            "programs": {"compiled": self.compile_watch.compiled,
                         "from_cache": self.compile_watch.from_cache}}).record()
        if with_snapshots:
            out.update(snapshots=self.snapshots, snapshot_errors=self.snapshot_errors)
        return out

    def finish(self, summary, statuses=(), *, details: str = "",
               what: str = "the run") -> int:
        """Print ``wrote SUMMARY (DETAILS, seconds[, interrupted])`` (``summary``: a path or
        the list of every file written, the main one first), warn about failed snapshots
        and non-finite losses, and return the exit code: 130/143 after Ctrl-C/SIGTERM, 3
        when a loss turned non-finite, else 0."""
        stopped = ", interrupted" if self.interruption.signal else ""
        details = f"{details}, " if details else ""
        compiled = self.compile_watch.summary()
        compiled = f"; {compiled}" if compiled else ""
        if not isinstance(summary, str):
            summary = [str(f) for f in summary if f]
            summary = (", ".join(summary[:-1]) + " and " + summary[-1] if len(summary) > 1
                       else summary[0])
        print(f"wrote {summary} ({details}{self.seconds:.1f} s{stopped}{compiled})",
              file=sys.stderr)
        if self.snapshot_errors:
            print(f"warning: {len(self.snapshot_errors)} snapshot(s) could not be written: "
                  f"{self.snapshot_errors[0]}", file=sys.stderr)
        if self.interruption.exit_code is not None:
            return self.interruption.exit_code
        if np.any(np.asarray(statuses) == int(nstjax.Status.NON_FINITE)):
            print(f"warning: the loss became non-finite in {what}; stopped there and kept the "
                  "last finite image", file=sys.stderr)
            return common.EXIT_NON_FINITE
        return 0
