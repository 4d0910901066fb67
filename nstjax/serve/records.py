"""A studio run's files, written as the command line writes them, and the list of past runs.

A single run's folder ``out/runs/<id>/`` holds ``result.png``, its sidecar
``result.png.json`` (as ``nstjax stylize`` writes it: ``command``, ``arguments`` under
the command line's names, so ``nstjax stylize --config`` repeats the run, the resolved
objective and solver, loss weights, status, losses and their history) and the loss plot
``result_loss.png``; a sweep's holds ``member_NN.png``, ``contact_sheet.png`` and
``sweep.json``.  Each set is written all or nothing (:func:`nstjax.io.image_writing.output_unit`).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import numpy as np

import nstjax
from nstjax.io import jsonio
from nstjax.io.image_writing import output_unit, save_image
from nstjax.io.pictures import contact_sheet, label, loss_curve, with_loss_curve
from nstjax.run.sidecar import Sidecar
from nstjax.serve.settings import RunSettings, record_of

RESULT, SIDECAR, LOSS_PLOT = "result.png", "result.png.json", "result_loss.png"
SHEET, REPORT = "contact_sheet.png", "sweep.json"
DOWNLOADS = (RESULT, SIDECAR, LOSS_PLOT, SHEET, REPORT)


def new_run_folder(runs: Path, kind: str) -> Path:
    """A fresh, empty folder ``<kind>-<UTC time>[-n]`` under ``runs``."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        folder = runs / f"{kind}-{stamp}{f'-{n}' if n else ''}"
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise OSError(f"{runs}: cannot make a new run folder")


def _series(history, term_history, n: int) -> dict:
    series = {"total": (np.arange(1, n + 1), np.asarray(history)[:n])}
    for k, v in (term_history or {}).items():
        v = np.asarray(v)[:n]
        if np.any(v > 0):
            series[k] = (np.arange(1, n + 1), v)
    return series


def write_run(folder: Path, result, settings: RunSettings, inputs: dict, *,
              image_size, timings: dict, memory: dict | None = None) -> dict:
    """The image, its sidecar and its loss plot; returns the sidecar.  ``memory``: the
    run's ``{planned_bytes, peak_bytes, available_bytes}``, as the command line writes it."""
    n = int(result.n_iter)
    arguments = {**settings.arguments, **inputs, "output": str(folder / RESULT)}
    sidecar = Sidecar("stylize", arguments, {
        "output": str(folder / RESULT), **record_of(settings),
        "loss_weights": result.weights._asdict(), "image_size": list(image_size),
        "iterations": n, "status": nstjax.Status(int(result.status)).name.lower(),
        "final_loss": float(result.loss),
        "final_terms": {k: float(v) for k, v in result.terms.items()},
        "loss_history": np.asarray(result.history)[:n],
        "term_history": {k: np.asarray(v)[:n] for k, v in result.term_history.items()},
        "timings_s": timings, "memory": memory, "written_by": "nstjax serve"})
    with output_unit():
        save_image(folder / RESULT, np.asarray(result.image))
        try:
            plot = loss_curve(_series(result.history, result.term_history, n),
                              title=f"{n} iterations")
            save_image(folder / LOSS_PLOT, plot)
        except ValueError:          # no positive finite loss to plot
            pass
        sidecar.write(folder / SIDECAR)
    return sidecar.record()


def write_sweep(folder: Path, res, settings: RunSettings, inputs: dict, *, swept,
                image_size, timings: dict, memory: dict | None = None) -> dict:
    """Every finished member, the labelled contact sheet and ``sweep.json`` (``memory`` as
    :func:`write_run`'s)."""
    done = len(res.images)
    cells = np.stack([with_loss_curve(res.images[i], _series(res.history[i], None,
                                                             int(res.n_iter[i])))
                      for i in range(done)])
    members = [{"index": i, "image": str(folder / f"member_{i:02d}.png"), "setting": m,
                "label": ", ".join(label(k, m[k]) for k in swept),
                "final_loss": float(res.loss[i]), "iterations": int(res.n_iter[i]),
                "status": nstjax.Status(int(res.status[i])).name.lower(),
                "loss_history": res.history[i, :int(res.n_iter[i])]}
               for i, m in enumerate(res.settings)]
    sidecar = Sidecar("sweep", {**settings.arguments, **inputs}, {
        **record_of(settings), "swept": list(swept), "values": settings.sweep,
        "image_size": list(image_size), "members": members,
        "contact_sheet": str(folder / SHEET), "timings_s": timings, "memory": memory,
        "written_by": "nstjax serve"})
    with output_unit():
        for i in range(done):
            save_image(folder / f"member_{i:02d}.png", res.images[i])
        save_image(folder / SHEET, contact_sheet(cells, res.settings, list(swept)))
        sidecar.write(folder / REPORT)
    return sidecar.record()


def read_record(folder: Path) -> dict | None:
    """A run folder's sidecar (single run or sweep), or ``None`` when it has none."""
    for name in (SIDECAR, REPORT):
        try:
            return jsonio.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return None


def files_of(folder: Path) -> dict:
    """``{name: download URL}`` of the result files that exist in a run folder."""
    return {name: f"/api/runs/{folder.name}/files/{name}" for name in DOWNLOADS
            if (folder / name).is_file()}


def past_runs(runs: Path, *, limit: int = 50) -> list[dict]:
    """The newest runs first: id, kind, status, final loss and file URLs."""
    try:
        folders = [f for f in runs.iterdir() if f.is_dir() and not f.is_symlink()]
    except OSError:
        return []
    out = []
    for folder in sorted(folders, key=lambda f: f.name, reverse=True)[:limit]:
        record = read_record(folder)
        if not isinstance(record, dict):
            continue
        out.append({"id": folder.name, "kind": record.get("command"),
                    "status": record.get("status"), "final_loss": record.get("final_loss"),
                    "iterations": record.get("iterations"),
                    "when": os.path.getmtime(folder), "files": files_of(folder)})
    return out
