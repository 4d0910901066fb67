"""Memory: what a compiled program needs, what the machine has, and measuring the truth.

The decision "fits / chunk / refuse" should come from XLA's own numbers for the program
about to run: :func:`program_memory` / :func:`compiled_bytes` read them from
``jax.jit(f).lower(...).compile().memory_analysis()``.  On the CPU backend of jax 0.10.2 the
fields that exist and matter are

* ``argument_size_in_bytes``: the inputs the program reads (unused inputs are pruned by jit,
  so this can be less than what the caller holds: pass ``args=`` to count those);
* ``output_size_in_bytes``: the results;
* ``temp_size_in_bytes``: one block holding every intermediate (the activations kept for
  the backward pass, the gradient buffers), as laid out by XLA's buffer assignment;
* ``generated_code_size_in_bytes`` (0 on CPU, where code lives outside the buffers);
* ``alias_size_in_bytes``: outputs written into donated inputs (not allocated twice).

``peak_memory_in_bytes`` also exists but on CPU reports only arguments plus outputs, not
the temporaries, so it is not used.  Measured against resident memory (see
:func:`measure_peak_bytes` and ``tests/run/test_memory.py``), a call allocates ``temp + output``
plus scratch outside XLA's buffers: the CPU convolution kernels pack the weight operand
(measured 1.4, 2.7, 4.6 and 9.4 MB with the largest VGG kernel at 0.6, 2.4, 4.7 and 9.4 MB)
and cache-sized blocks of the other (~3 MB at most).  :attr:`ProgramMemory.scratch`
allows for it on CPU as the largest argument plus :data:`CPU_SCRATCH_BYTES`.

:func:`estimate_transfer_bytes` is a closed-form estimate without compiling, the memory
check's first screen (it settles the clearly small and the clearly huge); it does not model
vmapped sweeps, which are measured from their compiled programs.
"""

from __future__ import annotations

import ctypes
import gc
import os
from typing import NamedTuple

from nstjax.model.layers import PARAMETER_COUNT
from nstjax.model.vgg import BLOCK_SIZES, LAYERS, VGG_WIDTHS, layer_depth

CPU_SCRATCH_BYTES = 4 * 2 ** 20
"""Cache-sized operand blocks the CPU kernels allocate outside XLA's buffers (measured ≤ 3.3 MB)."""

CPU_FIRST_CALL = 1.1
"""A program's first call on CPU grows the process by up to this times XLA's ``temp + output``
(the buffers are fresh pages then; later calls reuse freed heap): benchmarks/memory.py."""

CPU_COMPILE_BYTES = 128 * 2 ** 20
"""Resident memory a compiled VGG19 program keeps on CPU (its code and the compiler's
arenas), counted once per program the run compiles that is not compiled yet."""


# ----------------------------------------------------------------------------- compiled numbers

class ProgramMemory(NamedTuple):
    """XLA's memory figures for one compiled program, in bytes.

    Attributes:
      argument: the inputs the caller holds for the call (all of them: XLA's own figure
        leaves out inputs the program does not read, which the caller still keeps).
      output: results.
      temp: intermediates (one block laid out by XLA's buffer assignment).
      code: generated code counted by the backend (0 on CPU).
      alias: outputs that reuse donated inputs.
      scratch: allowance for memory the runtime's kernels take outside XLA's buffers (CPU:
        the largest input, packed by the convolution kernels, plus
        :data:`CPU_SCRATCH_BYTES`; 0 elsewhere, where such workspace is inside ``temp``).
    """

    argument: int
    output: int
    temp: int
    code: int
    alias: int
    scratch: int

    @property
    def total(self) -> int:
        """Peak bytes while the program runs, inputs included."""
        return self.argument + self.new

    @property
    def new(self) -> int:
        """Bytes a call allocates on top of its (already existing) inputs."""
        return self.output + self.temp + self.code - self.alias + self.scratch


def leaf_sizes(tree) -> list[int]:
    """Bytes of every array-like leaf (arrays, ``ShapeDtypeStruct``, jit's ``ArgInfo``)."""
    import jax
    import numpy as np
    out = []
    for x in jax.tree_util.tree_leaves(tree):
        shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
        if shape is not None and dtype is not None:
            out.append(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
    return out


def program_memory(compiled, *, args=None) -> ProgramMemory:
    """Memory figures of a compiled program, from XLA's own analysis.

    Args:
      compiled: ``jax.jit(f).lower(*args).compile()`` (a ``jax.stages.Compiled``).
      args: the arguments the caller holds (arrays or ``ShapeDtypeStruct`` pytrees);
        default: the compiled program's own argument list (``compiled.args_info``).
        jit prunes inputs the program does not read (e.g. VGG layers deeper than the loss
        uses) from XLA's argument size, but the caller still keeps them in memory.

    Returns:
      A :class:`ProgramMemory`.

    Raises:
      ValueError: when the backend gives no memory analysis.
    """
    import jax

    stats = compiled.memory_analysis()
    if stats is None:
        raise ValueError("this JAX backend gives no memory analysis for compiled programs")
    if args is None:
        args = getattr(compiled, "args_info", ())
    sizes = leaf_sizes(args)
    cpu = jax.default_backend() == "cpu"
    return ProgramMemory(argument=max(int(stats.argument_size_in_bytes), sum(sizes)),
                         output=int(stats.output_size_in_bytes),
                         temp=int(stats.temp_size_in_bytes),
                         code=int(getattr(stats, "generated_code_size_in_bytes", 0) or 0),
                         alias=int(getattr(stats, "alias_size_in_bytes", 0) or 0),
                         scratch=max(sizes, default=0) + CPU_SCRATCH_BYTES if cpu else 0)


def compiled_bytes(compiled, *, args=None) -> int:
    """Peak bytes of one call of a compiled program, inputs included.

    ``argument + output + temp + generated code − aliased`` from
    ``compiled.memory_analysis()``, plus the CPU kernels' scratch: see
    :class:`ProgramMemory` and :func:`program_memory` (``args``).
    """
    return program_memory(compiled, args=args).total


def resident_bytes() -> int:
    """What this process holds now where the run's memory is planned: the device's
    ``bytes_in_use`` on an accelerator, resident memory (``VmRSS``) on the CPU."""
    stats = _device_stats()
    if "bytes_in_use" in stats:
        return int(stats["bytes_in_use"])
    try:
        return rss_bytes()
    except OSError:
        return 0


def measured_peak_bytes() -> int:
    """The run's measured peak where it is planned: the device's ``peak_bytes_in_use`` on
    an accelerator, the process's :func:`peak_rss_bytes` on the CPU."""
    stats = _device_stats()
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"])
    return peak_rss_bytes()


def _device_stats() -> dict:
    try:
        import jax
        if jax.default_backend() == "cpu":
            return {}
        return jax.devices()[0].memory_stats() or {}
    except Exception:  # noqa: BLE001 -- a backend without memory stats
        return {}


# ----------------------------------------------------------------------------- measuring

def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {key}")


def rss_bytes() -> int:
    """Resident memory of this process now (Linux ``VmRSS``)."""
    return _status_bytes("VmRSS:")


_peak_before_reset = 0


def peak_rss_bytes() -> int:
    """The process's peak resident memory so far (Linux ``VmHWM``), including peaks from
    before :func:`measure_peak_bytes` reset the kernel's high-water mark; 0 where unknown."""
    try:
        return max(_status_bytes("VmHWM:"), _peak_before_reset)
    except OSError:
        import resource
        return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                   _peak_before_reset)


def start_peak() -> None:
    """Measure a run's peak afresh in a long-lived process (the web page's server): on the
    CPU the kernel's high-water mark is reset to what is resident now (``clear_refs`` ← 5;
    :func:`peak_rss_bytes` still reports the process's whole peak).  A device's peak
    counter cannot be reset; there :func:`run_peak_bytes` is the process's peak."""
    global _peak_before_reset
    try:
        _peak_before_reset = max(_peak_before_reset, _status_bytes("VmHWM:"))
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:             # not allowed: the peak stays the process's
        pass


def run_peak_bytes() -> int:
    """The peak since :func:`start_peak`: the device's ``peak_bytes_in_use`` on an
    accelerator, ``VmHWM`` on the CPU (the process's peak where it could not be reset)."""
    stats = _device_stats()
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"])
    try:
        return _status_bytes("VmHWM:")
    except OSError:
        return peak_rss_bytes()


def _release_freed_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: freed memory may stay resident
        pass


def measure_peak_bytes(fn, *args) -> int:
    """Resident bytes that calling ``fn(*args)`` adds at its peak (Linux, CPU backend).

    Call it with a compiled function that has run once already (one-time initialisation
    is then excluded).  Method: free heap pages are returned to the OS (``malloc_trim``),
    the kernel's high-water mark is reset (``/proc/self/clear_refs`` ← 5), then
    ``VmHWM − VmRSS`` after the call is the growth at the peak.  This is trustworthy for
    the CPU backend because XLA's CPU buffers come straight from the process heap (no
    pooling allocator as on GPU), so every byte a call writes becomes resident, and the
    reset keeps the compiler's own, larger peak from masking the call's.  Where the reset
    is not allowed, ``ru_maxrss`` is used, which only shows growth beyond earlier peaks.

    Returns:
      Bytes; the result of ``fn`` is dropped.
    """
    import resource

    import jax

    global _peak_before_reset
    _release_freed_memory()
    try:
        _peak_before_reset = max(_peak_before_reset, _status_bytes("VmHWM:"))
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = rss_bytes()
        jax.block_until_ready(fn(*args))
        return _status_bytes("VmHWM:") - before
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        jax.block_until_ready(fn(*args))
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before


# ----------------------------------------------------------------------------- the machine

def _read_int(path) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return None if text in ("", "max") else int(text)


def _stat_field(path, names) -> int:
    try:
        with open(path) as f:
            fields = dict(line.split()[:2] for line in f if line.strip())
    except (OSError, ValueError):
        return 0
    for name in names:
        if name in fields:
            return int(fields[name])
    return 0


def cgroup_available_bytes(root: str = "/sys/fs/cgroup") -> int | None:
    """Memory left under this process's cgroup limit, or None if there is no limit.

    cgroup v2 (``memory.max`` − ``memory.current``) or v1 (``memory.limit_in_bytes`` −
    ``memory.usage_in_bytes``), counting inactive file cache as available (the kernel
    reclaims it before it kills anything).
    """
    for limit_f, usage_f, stat_f, inactive in (
            ("memory.max", "memory.current", "memory.stat", ("inactive_file",)),
            ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes",
             "memory/memory.stat", ("total_inactive_file", "inactive_file"))):
        limit = _read_int(os.path.join(root, limit_f))
        if limit is None or limit >= 1 << 60:  # absent, "max", or v1's "unlimited"
            continue
        usage = _read_int(os.path.join(root, usage_f)) or 0
        usage -= min(usage, _stat_field(os.path.join(root, stat_f), inactive))
        return max(0, limit - usage)
    return None


def meminfo_available_bytes(path: str = "/proc/meminfo") -> int | None:
    """The kernel's ``MemAvailable`` (free plus reclaimable memory), or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def available_bytes() -> int:
    """Memory a new computation can still use on the default JAX device.

    GPU/TPU: ``bytes_limit − bytes_in_use`` from the device.  CPU: the smaller of the
    kernel's ``MemAvailable`` and what the cgroup limit leaves (containers), falling back
    to physical RAM.  Memory already held by this process (loaded weights, images) is not
    included, so compare it with :attr:`ProgramMemory.new` for inputs that already exist.
    """
    try:
        import jax
        stats = jax.devices()[0].memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    except Exception:  # noqa: BLE001 -- a backend without memory stats
        pass
    found = [b for b in (meminfo_available_bytes(), cgroup_available_bytes()) if b is not None]
    if found:
        return min(found)
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


# ----------------------------------------------------------------------------- closed form (old)

def activation_elements(height: int, width: int, deepest: str) -> int:
    """Number of float32 activations of one forward pass up to ``deepest`` (inclusive)."""
    total, h, w = 0, height, width
    stop = layer_depth(deepest)
    for name in LAYERS[: stop + 1]:
        block = int(name[4])
        if name.startswith("pool"):
            h, w = h // 2, w // 2
        total += h * w * VGG_WIDTHS[block - 1]
    return total


def estimate_transfer_bytes(height: int, width: int, *, layers, history_size: int = 10,
                            remat: bool = False, members: int = 1) -> int:
    """Peak bytes of one objective evaluation with its gradient, plus optimiser state.

    A closed form, without compiling: the memory check's screen and, for a clearly small
    run, its plan (larger runs are planned from :func:`program_memory`).
    Counts the forward activations kept for the backward pass (conv outputs and ReLU
    outputs), one gradient buffer of the largest activation, the VGG parameters and the
    L-BFGS history (``2·m`` images).  With ``remat`` only one block's activations are live.
    ``members`` multiplies the per-image part (sweeps).
    """
    deepest = max(layers, key=layer_depth)
    act = activation_elements(height, width, deepest)
    if remat:
        act = act // len(BLOCK_SIZES) + height * width * VGG_WIDTHS[0] * 2
    largest = height * width * VGG_WIDTHS[0]
    image = height * width * 3
    per_member = 4 * (act + 2 * largest + (2 * history_size + 4) * image)
    params = 4 * PARAMETER_COUNT
    return members * per_member + params
