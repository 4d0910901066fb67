"""JAX's persistent compilation cache, on by default in the user's cache folder.

A second run of the same shapes then loads the compiled programs from disk instead of
compiling them again (seconds on CPU for the VGG objective and its gradient).

Where: ``$NSTJAX_COMPILATION_CACHE`` if set (``0``, ``off``, ``false`` or ``no`` disable the
cache), else ``$XDG_CACHE_HOME/nstjax/jax``, else ``~/.cache/nstjax/jax``.

JAX does not write a program that contains host callbacks (``jax.debug.callback``,
``io_callback``: progress bars, snapshots) to the cache: such a program compiles on every
run. Keep callbacks out of the program you want cached (report progress between compiled
calls instead).

The folder is bounded by :func:`trim`, once per process when the cache is turned on, not
by JAX's own size limit: that one stats every entry and reads its access-time file on
each write, and a single entry whose access-time file is missing (a process stopped
between the two writes, or two processes racing) makes every later write fail, so
the cache silently stops growing.

A damaged entry (a truncated file, a disk error) cannot be read, so JAX compiles the
program again but, finding the file there, never writes the good one: every later run
would pay the compile and print a warning.  :class:`_Repair` removes such an entry when
its miss is logged, so the fresh program takes its place, and says so in one line.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path

ENV_VAR = "NSTJAX_COMPILATION_CACHE"
_OFF = ("0", "off", "false", "no")
# Bounded so that many image sizes cannot fill a disk; least recently used entries go.
MAX_SIZE_BYTES = 2 << 30
TRIM_TO = 0.75          # a trim leaves this fraction of the bound, so it is rarely needed
_ENTRY, _ATIME = "-cache", "-atime"


_MISS = "PERSISTENT COMPILATION CACHE MISS"
_READ_ERROR = "Error reading persistent compilation cache entry"


class _Repair(logging.Handler):
    """Removes the cache files of a program JAX missed although its entry exists (so it
    could not be read): the program compiled next is then written in its place.

    Only an entry older than this handler counts: a newer one was written by another
    process after the lookup missed (two runs at once), and is good."""

    def __init__(self, folder: Path):
        super().__init__(logging.DEBUG)
        self.folder, self.repaired, self.since = folder, 0, time.time()

    def emit(self, record: logging.LogRecord) -> None:
        if not str(record.msg).startswith(_MISS) or len(record.args or ()) < 2:
            return
        key = str(record.args[1])
        try:
            written = (self.folder / f"{key}{_ENTRY}").stat().st_mtime
        except OSError:         # no entry: an ordinary miss
            return
        if written < self.since:
            for suffix in (_ENTRY, _ATIME):
                _unlink(self.folder / f"{key}{suffix}")
            if not self.repaired:
                print("note: the compilation cache held a damaged entry; replacing it "
                      f"({self.folder})", file=sys.stderr)
            self.repaired += 1


class _Forward(logging.Handler):
    """Passes the compiler logger's warnings on to its parents (which no longer see its
    debug records: those are read by :class:`_Repair` only)."""

    def __init__(self, parent: logging.Logger):
        super().__init__(logging.WARNING)
        self.parent = parent

    def emit(self, record: logging.LogRecord) -> None:
        self.parent.handle(record)


def _install_repair(folder: Path) -> None:
    logger = logging.getLogger("jax._src.compiler")
    for handler in list(logger.handlers):
        if isinstance(handler, (_Repair, _Forward)):
            logger.removeHandler(handler)
    logger.addHandler(_Repair(folder))
    if logger.getEffectiveLevel() > logging.DEBUG:
        logger.addHandler(_Forward(logging.getLogger("jax._src")))
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    warnings.filterwarnings("ignore", message=_READ_ERROR)


def trim(folder: Path, max_bytes: int = MAX_SIZE_BYTES) -> int:
    """Remove the least recently used entries of ``folder`` when together they exceed
    ``max_bytes``, down to :data:`TRIM_TO` of it; returns the number removed.

    "Used" is the later of a file's access and modification times (the kernel's relatime
    keeps access times to within a day, enough to order programs by use). Access-time
    files that JAX's own size limit left behind are removed too.
    """
    entries = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                if e.name.endswith(_ATIME):
                    _unlink(e.path)
                elif e.name.endswith(_ENTRY):
                    try:
                        st = e.stat()
                    except OSError:
                        continue
                    entries.append((max(st.st_atime, st.st_mtime), st.st_size, e.path))
    except OSError:
        return 0
    total = sum(size for _, size, _ in entries)
    if total <= max_bytes:
        return 0
    removed = 0
    for _, size, path in sorted(entries):
        if total <= TRIM_TO * max_bytes:
            break
        if _unlink(path):
            total -= size
            removed += 1
    return removed


def _unlink(path) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:         # gone already (another process), or not ours to remove
        return False


def compilation_cache_dir() -> Path | None:
    """The cache folder the environment asks for, or ``None`` when it is disabled."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env.lower() in _OFF:
        return None
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(base) / "nstjax" / "jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache for this process.

    Every program is cached whatever its compile time or size (our programs take 0.1-30 s
    to compile; small ones add up at start-up). Safe to call after JAX has compiled
    something: the cache is re-initialised. An unusable folder leaves the cache off.

    Args:
      path: the folder; default :func:`compilation_cache_dir`.

    Returns:
      The folder in use, or ``None`` when the cache is disabled or the folder unusable.
    """
    folder = compilation_cache_dir() if path is None else Path(path).expanduser()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK | os.X_OK):
        return None

    import jax
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_compilation_cache_max_size", -1)      # bounded by trim()
    # JAX decides once per process, at its first compilation, whether the cache is used;
    # forget that decision so the folder set above takes effect even after a compile.
    compilation_cache.reset_cache()
    trim(folder)
    _install_repair(folder)
    return folder
