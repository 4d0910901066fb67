"""JAX's persistent compilation cache, on by default in the user's cache folder.

A second run of the same shapes then loads the compiled programs from disk instead of
compiling them again (seconds on CPU for the VGG objective and its gradient).

Where: ``$NSTJAX_COMPILATION_CACHE`` if set (``0``, ``off``, ``false`` or ``no`` disable the
cache), else ``$XDG_CACHE_HOME/nstjax/jax``, else ``~/.cache/nstjax/jax``.

JAX does not write a program that contains host callbacks (``jax.debug.callback``,
``io_callback``: progress bars, snapshots) to the cache: such a program compiles on every
run. Keep callbacks out of the program you want cached (report progress between compiled
calls instead).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "NSTJAX_COMPILATION_CACHE"
_OFF = ("0", "off", "false", "no")
# Bounded so that many image sizes cannot fill a disk; least recently used entries go.
MAX_SIZE_BYTES = 2 << 30


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
    jax.config.update("jax_compilation_cache_max_size", MAX_SIZE_BYTES)
    # JAX decides once per process, at its first compilation, whether the cache is used;
    # forget that decision so the folder set above takes effect even after a compile.
    compilation_cache.reset_cache()
    return folder
