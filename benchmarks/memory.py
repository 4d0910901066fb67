"""Planned against measured peak memory: the plan each command writes beside its outputs.

Runs the command line as a user would, each case in a fresh process, and reads the
``memory`` record that ``nstjax sweep`` (``sweep.json``) and ``nstjax stylize`` (the image's
sidecar) write: ``planned_bytes`` (the plan made before the work), ``peak_bytes`` (the
process's measured peak resident memory, ``VmHWM``, after the last picture was written)
and ``available_bytes``.  Sweeps of 2, 10, 100 and 400 members (``--style-weight`` ×
``--tv-weight`` grids, one iteration each) at 64 and 128 px; single runs at 256 to 2048 px
(three iterations); ``--preset nnst`` at 256 to 1024 px (one step per pass: its peak is
each pass's first step).  The planned peak should be within 25% of the measured one::

    python benchmarks/memory.py                 # the whole table (about 45 minutes here)
    python benchmarks/memory.py --quick         # 2 and 10 members, 256 and 512 px
    python benchmarks/memory.py --only nnst     # one kind of case: sweep, stylize or nnst
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEPS = [(2, 1), (10, 1), (10, 10), (20, 20)]     # --style-weight × --tv-weight values
SWEEP_SIZES = (64, 128)
SINGLE_SIZES = (256, 512, 1024, 2048)
NNST_SIZES = (256, 512, 1024)
MiB = 2 ** 20


def _run(cmd: list, record: Path) -> tuple[dict, float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr[-2000:]}")
    plan = next((line for line in proc.stderr.splitlines() if "fit in memory" in line), "")
    return json.loads(record.read_text())["memory"], seconds, plan


def sweep_case(n_style: int, n_tv: int, size: int, folder: Path) -> dict:
    out = folder / f"sweep_{n_style}x{n_tv}_{size}"
    cmd = [sys.executable, "-m", "nstjax", "sweep", "--demo", "--size", str(size),
           "--iters", "1", "--no-progress", "--output-dir", str(out),
           "--style-weight", ",".join(str(i + 1) for i in range(n_style))]
    if n_tv > 1:
        cmd += ["--tv-weight", ",".join(str(i) for i in range(n_tv))]
    mem, seconds, plan = _run(cmd, out / "sweep.json")
    chunk = plan.rsplit("chunks of ", 1)[-1].split()[0] if "chunks of" in plan else "?"
    return dict(case=f"sweep {n_style * n_tv} members", size=size, chunk=chunk,
                seconds=seconds, **mem)


def single_case(size: int, folder: Path, preset: str | None = None) -> dict:
    out = folder / f"single_{preset or 'default'}_{size}.png"
    cmd = [sys.executable, "-m", "nstjax", "stylize", "--demo", "--size", str(size),
           "--iters", "1" if preset == "nnst" else "3", "--no-progress", "--output", str(out)]
    cmd += ["--preset", preset] if preset else []
    mem, seconds, _ = _run(cmd, out.with_name(out.name + ".json"))
    return dict(case=f"stylize --preset {preset}" if preset else "stylize", size=size,
                chunk="-", seconds=seconds, **mem)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 and 10 members, 256 and 512 px")
    p.add_argument("--only", choices=("sweep", "stylize", "nnst"), help="one kind of case")
    args = p.parse_args(argv)
    kinds = (args.only,) if args.only else ("sweep", "stylize", "nnst")
    sweeps = (SWEEPS[:2] if args.quick else SWEEPS) if "sweep" in kinds else []
    singles = (SINGLE_SIZES[:2] if args.quick else SINGLE_SIZES) if "stylize" in kinds else []
    nnsts = (NNST_SIZES[:1] if args.quick else NNST_SIZES) if "nnst" in kinds else []
    folder = Path(tempfile.mkdtemp(prefix="nstjax-memory-"))
    print(f"{'case':<24} {'px':>5} {'chunk':>6} {'planned MiB':>12} {'peak MiB':>9} "
          f"{'planned/peak':>13} {'s':>6}")
    worst = 0.0
    try:
        cases = [lambda s=s, t=t, z=z: sweep_case(s, t, z, folder)
                 for z in SWEEP_SIZES for s, t in sweeps]
        cases += [lambda z=z: single_case(z, folder) for z in singles]
        cases += [lambda z=z: single_case(z, folder, "nnst") for z in nnsts]
        for case in cases:
            r = case()
            ratio = r["planned_bytes"] / r["peak_bytes"]
            worst = max(worst, abs(ratio - 1))
            print(f"{r['case']:<24} {r['size']:>5} {r['chunk']:>6} "
                  f"{r['planned_bytes'] / MiB:>12.0f} {r['peak_bytes'] / MiB:>9.0f} "
                  f"{ratio:>13.3f} {r['seconds']:>6.0f}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"largest departure of the plan from the measured peak: {100 * worst:.0f}% "
          "(the issue asks for at most 25%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
