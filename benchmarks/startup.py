#!/usr/bin/env python
"""Where a tiny job's time goes: the whole process, phase by phase.

A tiny job (``nstjax stylize --demo --size 64 --iters 1``) is timed as a user runs it, in
fresh processes, twice: first with an empty compilation cache, then with the cache the first
run wrote.  Each phase is measured in its own process (medians of ``--repeat``):

* ``interpreter``: ``python -c pass``;
* ``import jax``, ``import nstjax``, ``import nstjax.cli``: each minus the one before;
* from the job's sidecar: ``load`` (weights, images), ``compile`` (programs compiled or read
  from the cache, as :mod:`nstjax.cli.compile_watch` saw them), the rest of the solve, and
  ``write`` (image, sidecar, loss curve: the process's wall time less everything else).

    python benchmarks/startup.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(cmd, env, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def job(tmp: Path, env) -> tuple[float, dict]:
    out = tmp / "tiny.png"
    cmd = [sys.executable, "-m", "nstjax", "stylize", "--demo", "--size", "64", "--iters", "1",
           "--no-progress", "--output", str(out)]
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode:
        raise SystemExit(f"the tiny job failed:\n{done.stderr[-2000:]}")
    return seconds, json.loads((tmp / "tiny.png.json").read_text())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "NSTJAX_COMPILATION_CACHE": str(tmp / "cache")}
        steps = [("interpreter", "pass"), ("import jax", "import jax"),
                 ("import nstjax", "import nstjax"), ("import nstjax.cli", "import nstjax.cli")]
        times, before = {}, 0.0
        for name, code in steps:
            t = wall([py, "-c", code], env, args.repeat)
            times[name] = t - before
            before = t
        rows = []
        for run in ("first (empty cache)", "second (cache warm)"):
            total, meta = job(tmp, env)
            t = meta["timings_s"]
            solve = t["optimise_including_compile"]
            rows.append((run, total, t["load"], t["compile"], solve - t["compile"],
                         total - before - t["load"] - solve, meta["programs"]))
    print("phase                 seconds")
    for name, t in times.items():
        print(f"{name:20s} {t:8.2f}")
    print(f"\n{'tiny job':22s} {'total':>6s} {'imports':>8s} {'load':>6s} {'compile':>8s} "
          f"{'solve':>6s} {'write+exit':>10s}  programs")
    for run, total, load, comp, solve, rest, programs in rows:
        print(f"{run:22s} {total:6.2f} {before:8.2f} {load:6.2f} {comp:8.2f} {solve:6.2f} "
              f"{rest:10.2f}  {programs['compiled']} compiled, {programs['from_cache']} "
              "from the cache")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
