"""Tests of nstjax.run.memory: XLA's compiled numbers against measured resident memory.

The measured side runs in a fresh subprocess (nothing else of the test session resident)
and is independent of XLA's numbers: the inputs' resident size is ``VmRSS`` after creating
them minus ``VmRSS`` before (freed heap returned with ``malloc_trim`` both times), and a
call's growth is :func:`nstjax.run.memory.measure_peak_bytes` (high-water mark reset through
``/proc/self/clear_refs``, so the compiler's own larger peak cannot hide it).  Why that is
trustworthy on the CPU backend is in that function's docstring.

Tolerance: the issue asks for the estimate within 20% of the measured peak.  The
execution part alone (``temp + output`` against the call's growth) is held to the same 20%
where it is at least 8 MB; below that a fixed 1-3 MB of runtime scratch (thread-local
buffers of the convolution kernels) is a large fraction.  Measured on this machine the
totals agree to 1-8% (table in the module's commit message).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
import sys

import jax
import jax.numpy as jnp
import pytest

from nstjax.io import weights as W
from nstjax.run import memory, memory_plan

MiB = 2 ** 20

# Runs in a fresh interpreter: builds the inputs, compiles value-and-grad of a Gram + content
# objective (vmapped over members for a sweep), and prints XLA's figures and the measured ones.
PROBE = r"""
import json, sys
import numpy as np
import jax, jax.numpy as jnp
from nstjax.losses import core as losses
from nstjax.run import memory
from nstjax.io import weights as W
from nstjax.model.vgg import extract_features

cfg = json.loads(sys.argv[1])
CONTENT, STYLE = "relu4_2", ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
LAYERS = (CONTENT,) + STYLE
members, size = cfg["members"], cfg["size"]
h, w = 3 * size // 4, size
widths = (8, 8, 16, 16, 16) if cfg["weights"] == "tiny" else (64, 128, 256, 512, 512)
param_shapes, cin = {}, 3
for name in W.CONV_NAMES:
    cout = widths[int(name[5]) - 1]
    param_shapes[name] = ((3, 3, cin, cout), (cout,))
    cin = cout

# Everything that loads code or fills caches happens before the baseline: backend start,
# tracing (shapes of the features), a first host-to-device copy, HDF5's start-up.
f32 = lambda shape: jax.ShapeDtypeStruct(shape, jnp.float32)
abstract = W.VGGWeights({n: {"kernel": f32(k), "bias": f32(b)} for n, (k, b) in
                         param_shapes.items()}, f32((3,)), f32((3,)), f32(()),
                        jax.ShapeDtypeStruct((), jnp.bool_))
shapes = jax.eval_shape(lambda v, im: extract_features(v, im, LAYERS), abstract, f32((h, w, 3)))

def make_args():
    rng = np.random.default_rng(0)
    if cfg["weights"] == "tiny":
        params = {n: {"kernel": jnp.asarray(rng.standard_normal(k, np.float32)
                                            * np.float32((2 / (9 * k[2])) ** 0.5)),
                      "bias": jnp.asarray(np.zeros(b, np.float32))}
                  for n, (k, b) in param_shapes.items()}
        vgg = W.weights_from_arrays(params)
    else:
        vgg = W.load_vgg19(cfg["weights"], log=lambda m: None)
    image = jnp.asarray(rng.uniform(0, 1, (members, h, w, 3)).astype(np.float32))
    style_weight = jnp.asarray(np.logspace(0, 2, members).astype(np.float32))
    content_target = jnp.asarray(rng.standard_normal(shapes[CONTENT].shape, np.float32))
    grams = tuple(jnp.asarray(rng.standard_normal((shapes[l].shape[-1],) * 2, np.float32))
                  for l in STYLE)
    return jax.block_until_ready((image, style_weight, vgg, content_target, grams))

# Made once and dropped first, so that what loads code or fills caches on first use (HDF5,
# host-to-device copies, array conversions) is resident before the baseline.
make_args()
memory._release_freed_memory()
rss0 = memory.rss_bytes()
args = make_args()
memory._release_freed_memory()
inputs_resident = memory.rss_bytes() - rss0

def objective(im, sw, vgg, ct, grams):
    f = extract_features(vgg, im, LAYERS)
    style = sum(losses.gram_loss(f[l], g) for l, g in zip(STYLE, grams))
    return losses.content_loss(f[CONTENT], ct) + sw * style

one = jax.value_and_grad(objective)
fn = jax.vmap(one, in_axes=(0, 0, None, None, None)) if members > 1 else (
    lambda im, sw, *rest: one(im[0], sw[0], *rest))
compiled = jax.jit(fn).lower(*args).compile()
pm = memory.program_memory(compiled)
jax.block_until_ready(compiled(*args))  # warm-up: one-time initialisation is not the call's
growth = max(memory.measure_peak_bytes(compiled, *args) for _ in range(3))
print(json.dumps({"program": pm._asdict(), "total": pm.total, "new": pm.new,
                  "inputs_resident": inputs_resident, "growth": growth,
                  "measured": inputs_resident + growth}))
"""


def probe(weights, size, members=1):
    # A fixed mmap threshold: every large buffer is mapped on malloc and unmapped on free, so
    # resident memory follows allocations exactly (glibc's sliding threshold would otherwise
    # serve a later buffer from heap pages that are already resident and hide it).
    env = dict(os.environ, JAX_PLATFORMS="cpu", MALLOC_MMAP_THRESHOLD_="65536",
               MALLOC_TRIM_THRESHOLD_="0")
    cfg = json.dumps({"weights": str(weights), "size": size, "members": members})
    proc = subprocess.run([sys.executable, "-c", PROBE, cfg], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check(r, label):
    est, got = r["total"], r["measured"]
    p = r["program"]
    line = (f"{label}: estimate {est / MiB:.1f} MiB (inputs {p['argument'] / MiB:.1f} + temp "
            f"{p['temp'] / MiB:.1f} + output {p['output'] / MiB:.1f} + scratch "
            f"{p['scratch'] / MiB:.1f}), measured {got / MiB:.1f} MiB (inputs "
            f"{r['inputs_resident'] / MiB:.1f} + call {r['growth'] / MiB:.1f}), "
            f"ratio {est / got:.3f}")
    print(line)
    assert abs(est - got) <= 0.2 * got, line
    if r["growth"] >= 8 * MiB:
        assert abs(r["new"] - r["growth"]) <= 0.2 * r["growth"], line
    assert est >= got - 2 * MiB, line  # errs, if at all, towards refusing: never far under
    return line


@pytest.mark.integration
# Not 256 px × 1 (a 12 MiB program): there the runtime's per-thread convolution scratch,
# 4.6 MiB in XLA's figures and touched more or less as the machine is busy, swings the
# measured growth from 10 to 13 MiB from run to run.
@pytest.mark.parametrize("size, members", [(512, 1), (256, 4)])
def test_compiled_estimate_matches_measured_peak_tiny_vgg(size, members):
    r = probe("tiny", size, members)
    assert r["program"]["temp"] > 4 * MiB  # large enough that the comparison means something
    check(r, f"tiny VGG {size}px ×{members}")


@pytest.mark.integration
@pytest.mark.real_weights
@pytest.mark.parametrize("size, members", [(64, 1), (128, 1), (64, 4)])
def test_compiled_estimate_matches_measured_peak_real_vgg(size, members):
    path = W.default_weights_path()
    if not path.exists():
        pytest.skip(f"{path} missing")
    r = probe(path, size, members)
    # All 20M parameters are held although the program reads only up to relu5_1.
    assert r["program"]["argument"] >= 4 * W.PARAMETER_COUNT
    check(r, f"real VGG {size}px ×{members}")


# ----------------------------------------------------------------------------- program_memory

def test_program_memory_reads_xlas_sizes_exactly():
    x = jnp.ones((1000,), jnp.float32)
    unused = jnp.ones((250_000,), jnp.float32)  # 1 MB the program never reads
    compiled = jax.jit(lambda a, b: jnp.sin(a) * 2.0).lower(x, unused).compile()
    stats = compiled.memory_analysis()
    assert stats.argument_size_in_bytes == 4000  # XLA leaves out the unused input ...
    pm = memory.program_memory(compiled)
    assert pm.argument == 4000 + 1_000_000  # ... which the caller still holds
    assert pm.output == 4000 and pm.alias == 0
    assert pm.scratch == 1_000_000 + memory.CPU_SCRATCH_BYTES  # CPU: largest input + blocks
    assert memory.program_memory(compiled, args=(x,)).argument == 4000  # caller's own view
    assert memory.compiled_bytes(compiled) == pm.total == (
        1_004_000 + 4000 + pm.temp + pm.code + pm.scratch)
    donated = jax.jit(lambda a: a * 2.0, donate_argnums=0).lower(x).compile()
    dm = memory.program_memory(donated)
    assert dm.alias == 4000 and dm.new == dm.temp + dm.code + dm.scratch  # written in place


def test_program_line_extrapolates_xlas_figures_linearly(tiny_vgg):
    from nstjax.losses import core as losses
    from nstjax.model.vgg import extract_features

    layers = ("relu1_1", "relu3_1", "relu4_2")

    def objective(image, vgg):
        f = extract_features(vgg, image, layers)
        return sum(losses.gram_loss(f[n], jnp.eye(f[n].shape[-1])) for n in layers)

    batched = jax.jit(jax.vmap(jax.value_and_grad(objective), in_axes=(0, None)))

    def compile_for(k):
        return batched.lower(jax.ShapeDtypeStruct((k, 96, 128, 3), jnp.float32),
                             tiny_vgg).compile()

    one, two = (memory.program_memory(compile_for(k)) for k in (1, 2))
    fixed, per = memory_plan.program_line(one, two)
    first = memory.CPU_FIRST_CALL if jax.default_backend() == "cpu" else 1.0
    # The straight line from 1 and 2 members predicts a bigger compiled program from above,
    # by at most 10% (3% and 5% measured at K = 4 and 8): buffer assignment shares a little
    # more between members as K grows, so the plan errs on the safe side.
    for k in (4, 8):
        pm = memory.program_memory(compile_for(k))
        actual, predicted = pm.argument + first * pm.new, fixed + k * per
        assert actual <= predicted <= 1.10 * actual, (k, actual, predicted)
    plan = memory_plan.MemoryPlan(resident=0, compile=0, programs=((fixed, per),),
                                  available=10 * 2 ** 30)
    assert plan.members_that_fit(fraction=0.5) == int((5 * 2 ** 30 - fixed) // per) > 8
    assert plan._replace(available=fixed + per // 2).members_that_fit() == 0


def test_measure_peak_bytes_sees_a_known_allocation():
    n = 64 * MiB // 4
    make = jax.jit(lambda s: jnp.full((n,), s, jnp.float32))  # one 64 MiB output, written
    jax.block_until_ready(make(1.0))
    grown = memory.measure_peak_bytes(make, 2.0)
    # 64 MiB plus at most a few MiB of runtime scratch; page-exact resident accounting.
    assert 63 * MiB <= grown <= 70 * MiB, grown / MiB


# ----------------------------------------------------------------------------- available memory

def write(root, files):
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_cgroup_v2_limit_counts_inactive_file_cache_as_available(tmp_path):
    write(tmp_path, {"memory.max": "1073741824\n", "memory.current": "536870912\n",
                     "memory.stat": "anon 400000000\ninactive_file 100000000\n"})
    assert memory.cgroup_available_bytes(str(tmp_path)) == 1073741824 - (536870912 - 100000000)


def test_cgroup_v1_limit_and_unlimited(tmp_path):
    write(tmp_path, {"memory/memory.limit_in_bytes": "2147483648\n",
                     "memory/memory.usage_in_bytes": "1073741824\n",
                     "memory/memory.stat": "cache 5\ntotal_inactive_file 73741824\n"})
    assert memory.cgroup_available_bytes(str(tmp_path)) == 2147483648 - 1000000000
    write(tmp_path, {"memory/memory.limit_in_bytes": "9223372036854771712\n"})  # v1 "none"
    assert memory.cgroup_available_bytes(str(tmp_path)) is None
    write(tmp_path, {"memory.max": "max\n"})
    assert memory.cgroup_available_bytes(str(tmp_path)) is None
    assert memory.cgroup_available_bytes(str(tmp_path / "absent")) is None


def test_meminfo_and_the_smaller_limit_wins(tmp_path, monkeypatch):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:  16000000 kB\nMemFree:  1000 kB\nMemAvailable:   8000000 kB\n")
    assert memory.meminfo_available_bytes(str(info)) == 8_000_000 * 1024
    monkeypatch.setattr(memory, "meminfo_available_bytes", lambda: 8 << 30)
    monkeypatch.setattr(memory, "cgroup_available_bytes", lambda: 2 << 30)
    assert memory.available_bytes() == 2 << 30  # a container's limit below the host's RAM
    monkeypatch.setattr(memory, "cgroup_available_bytes", lambda: None)
    assert memory.available_bytes() == 8 << 30


def test_available_bytes_on_this_machine_is_plausible():
    got = memory.available_bytes()
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < got <= total
    real = memory.meminfo_available_bytes()
    if real is not None:
        assert got <= real


# ----------------------------------------------------------------------------- the run's plan

def test_memory_plan_is_the_largest_program_plus_what_is_held():
    plan = memory_plan.MemoryPlan(resident=500, compile=40, programs=((100, 10), (20, 30)),
                             available=1000, host_per_member=2)
    # peak(k) = resident + compile + max(100 + 10k, 20 + 30k) + 2k
    assert plan.new_bytes(1) == 40 + 110 + 2
    assert plan.new_bytes(10) == 40 + 320 + 20
    assert plan.peak_bytes(10) == 500 + 40 + 320 + 20
    # the largest k with 40 + max(100 + 10k, 20 + 30k) + 2k <= 800: 20 + 32k <= 760 -> 23
    assert plan.members_that_fit(fraction=0.8) == 23
    assert memory_plan.MemoryPlan(0, 0, ((900, 1),), 1000).members_that_fit() == 0
    # programs compiled already (the planner's own, for 1 and 2 members) cost no more code
    warm = plan._replace(compiled=(1, 2))
    assert warm.new_bytes(2) == 120 + 4 and warm.new_bytes(3) == plan.new_bytes(3)
    assert plan.record(3, peak=777) == {"planned_bytes": plan.peak_bytes(3),
                                        "peak_bytes": 777, "available_bytes": 1000}


def test_program_line_from_one_and_two_members():
    def pm(argument, new):
        return memory.ProgramMemory(argument=argument, output=new, temp=0, code=0, alias=0,
                                    scratch=0)
    fixed, per = memory_plan.program_line(pm(1100, 300), pm(1200, 500), resident_inputs=1000)
    first = memory.CPU_FIRST_CALL if jax.default_backend() == "cpu" else 1.0
    # need(1) = 100 + 300 first, need(2) = 200 + 500 first
    assert per == int(100 + 200 * first) and fixed == int(100 + 300 * first - per)


SWEEP_PROBE = r"""
import json, sys
import numpy as np, jax
from nstjax.io.weights import load_vgg19
from nstjax.run import sweeps as sw
from nstjax.solve.solver import Solver
path, size = sys.argv[1], int(sys.argv[2])
vgg = load_vgg19(path, log=lambda m: None)
rng = np.random.default_rng(0)
content = rng.uniform(0, 1, (3 * size // 4, size, 3)).astype(np.float32)
style = rng.uniform(0, 1, (size, size, 3)).astype(np.float32)
out = []
for k in (2, 8):
    res = sw.sweep(vgg, content, style, {"style_weight": list(np.logspace(0, 3, k))},
                   key=jax.random.PRNGKey(0), solver=Solver(max_iter=2))
    out.append(dict(res.memory, members=len(res.images)))
print(json.dumps(out))
"""


@pytest.mark.integration
@pytest.mark.real_weights
def test_sweep_plan_matches_the_measured_peak_of_2_and_8_members():
    """The sweep's plan (XLA's figures of its programs for 1 and 2 members, what the process
    holds, what compiling keeps) against the process's measured peak (``VmHWM``) of a sweep
    of 2 and then 8 members at 48 px, in a fresh process: within 25% each."""
    path = W.default_weights_path()
    if not path.exists():
        pytest.skip(f"{path} missing")
    proc = subprocess.run([sys.executable, "-c", SWEEP_PROBE, str(path), "48"],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    for r in runs:
        ratio = r["planned_bytes"] / r["peak_bytes"]
        print(f"{r['members']} members: planned {r['planned_bytes'] / MiB:.0f} MiB, "
              f"peak {r['peak_bytes'] / MiB:.0f} MiB, ratio {ratio:.3f}")
        assert 0.75 <= ratio <= 1.25, r
    assert runs[1]["planned_bytes"] > runs[0]["planned_bytes"]


@pytest.mark.integration
@pytest.mark.real_weights
def test_nnst_plan_matches_the_measured_peak(tmp_path):
    """``--preset nnst``'s plan (XLA's figures of its four largest programs, what the
    process holds, its programs' code) against the command's measured peak (``VmHWM``),
    both from its sidecar, at 48 px in a fresh process: within 25%."""
    path = W.default_weights_path()
    if not path.exists():
        pytest.skip(f"{path} missing")
    out = tmp_path / "nnst.png"
    proc = subprocess.run([sys.executable, "-m", "nstjax", "stylize", "--demo", "--preset",
                           "nnst", "--size", "48", "--iters", "1", "--no-progress",
                           "--output", str(out)], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(Path(str(out) + ".json").read_text())["memory"]
    ratio = record["planned_bytes"] / record["peak_bytes"]
    print(f"planned {record['planned_bytes'] / MiB:.0f} MiB, peak "
          f"{record['peak_bytes'] / MiB:.0f} MiB, ratio {ratio:.3f}")
    assert 0.75 <= ratio <= 1.25, record
    assert record["available_bytes"] > record["planned_bytes"]
