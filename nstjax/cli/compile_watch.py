"""Say when a run compiles, and how long it took: the first run at a new size waits for XLA.

JAX reports every compilation of a program through :mod:`jax.monitoring`: the start of a
backend compile (a scalar event), a hit in the persistent compilation cache, and the
compile's duration.  A :class:`CompileWatch` listens while a command solves: when a compile
has not been answered from the cache within :data:`QUIET_SECONDS`, it says
``compiling (first run at this size) ...`` once, and at the end reports the seconds spent
compiling and loading cached programs.
"""

from __future__ import annotations

import threading
from typing import Callable

import jax.monitoring

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
QUIET_SECONDS = 0.5     # a cache hit answers well within this; a compile takes longer

_active: list[CompileWatch] = []
_registered = False


def _on_scalar(event: str, value: float, **kw) -> None:
    if event == COMPILE_EVENT:
        for watch in list(_active):
            watch.on_compile_start()


def _on_event(event: str, **kw) -> None:
    if event == CACHE_HIT_EVENT:
        for watch in list(_active):
            watch.on_cache_hit()


def _on_duration(event: str, seconds: float, **kw) -> None:
    if event == COMPILE_EVENT:
        for watch in list(_active):
            watch.on_compile_end(seconds)


def _register() -> None:
    """Listen once per process (JAX has no way to remove a listener)."""
    global _registered
    if not _registered:
        jax.monitoring.register_scalar_listener(_on_scalar)
        jax.monitoring.register_event_listener(_on_event)
        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        _registered = True


class CompileWatch:
    """A context manager that counts compiles and cache hits while it is open.

    Args:
      say: called with one line when a compile has gone on for :data:`QUIET_SECONDS`
        without a cache hit (once per watch), e.g. ``tqdm.write`` or ``print``.

    Attributes:
      compiled: programs compiled (cache misses or no cache).
      from_cache: programs loaded from the persistent cache.
      seconds: wall time spent in both.
    """

    def __init__(self, say: Callable[[str], None] | None = None):
        self.say = say
        self.compiled = self.from_cache = 0
        self.seconds = 0.0
        self._timer: threading.Timer | None = None
        self._hit_now = False
        self._said = False
        self._lock = threading.Lock()

    def __enter__(self) -> CompileWatch:
        _register()
        _active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        self._cancel()
        if self in _active:
            _active.remove(self)

    def on_compile_start(self) -> None:
        """A backend compile began (JAX's compile event)."""
        with self._lock:
            self._hit_now = False
            self._cancel()
            if self.say is not None and not self._said:
                self._timer = threading.Timer(QUIET_SECONDS, self._announce)
                self._timer.daemon = True
                self._timer.start()

    def _announce(self) -> None:
        with self._lock:
            if self._hit_now or self._said:
                return
            self._said = True
        self.say("compiling ... (first run at this size, cached for next time)")

    def on_cache_hit(self) -> None:
        """The program came from the persistent cache."""
        with self._lock:
            self._hit_now = True
            self._cancel()

    def on_compile_end(self, seconds: float) -> None:
        """The compile (or cache load) took ``seconds``."""
        with self._lock:
            self._cancel()
            self.seconds += float(seconds)
            if self._hit_now:
                self.from_cache += 1
            else:
                self.compiled += 1

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def summary(self) -> str:
        """``"compiled 3 programs in 14.2 s"`` / ``"2 programs from the cache in 0.4 s"``,
        or ``""`` when nothing was compiled or loaded."""
        if self.compiled:
            return (f"compiled {self.compiled} program{'s' * (self.compiled != 1)} in "
                    f"{self.seconds:.1f} s (first run at this size)")
        if self.from_cache:
            return (f"{self.from_cache} compiled program{'s' * (self.from_cache != 1)} from "
                    f"the cache in {self.seconds:.1f} s")
        return ""

