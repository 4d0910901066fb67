"""Ctrl-C and SIGTERM during a solve: the first stops it after the current iteration and
the work is saved; the second exits at once."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable


class Interruption:
    """Ctrl-C and SIGTERM as a stop request: the first stops the solve after the current
    iteration (the work is kept), the second exits at once.

    The solve runs in a worker thread while the main thread, which Python delivers signals
    to, waits in short joins; the solve's host callback consults :meth:`should_stop`.
    """

    def __init__(self):
        self.signal: int | None = None
        self._event = threading.Event()

    def should_stop(self) -> bool:
        return self._event.is_set()

    @property
    def exit_code(self) -> int | None:
        return None if self.signal is None else 128 + self.signal

    def _handle(self, signum, frame):
        if self._event.is_set():
            os._exit(128 + signum)
        self.signal = signum
        self._event.set()
        print(f"\n{signal.Signals(signum).name}: stopping after this iteration and saving "
              "(again to quit at once)", file=sys.stderr)

    def run(self, work: Callable):
        """``work()`` with the signal handlers installed; returns its result."""
        if threading.current_thread() is not threading.main_thread():
            return work()
        outcome = {}

        def target():
            try:
                outcome["value"] = work()
            except BaseException as e:  # noqa: BLE001 -- re-raised in the main thread
                outcome["error"] = e

        old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            worker = threading.Thread(target=target, daemon=True, name="nstjax-solve")
            worker.start()
            while worker.is_alive():
                worker.join(0.1)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]
