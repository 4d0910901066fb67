"""``nstjax video``'s work in progress: ``<output>.work/`` beside the output.

It holds the optical flow (``flow.npz``, kept after a finished run so a rerun on the same
frames reuses it), the finished frames of a sequential run (``frames/00000.png``, ...), the
multi-pass checkpoint (``multipass.npz``: the last and the current pass, after every
chunk), and ``progress.json``: the run's settings and each finished frame's record.  A
folder with an unfinished run is never overwritten: ``--resume`` continues it (with the
same settings), or the user removes it.
"""

from __future__ import annotations

import shutil
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from nstjax.cli import common
from nstjax.cli.common import UsageError
from nstjax.io import jsonio
from nstjax.io.image_writing import save_image, write_atomic

# Flags that do not change the frames a run makes (a multi-pass run resumes at any --chunk,
# e.g. a smaller one after running out of memory; --weights may name the same weights
# elsewhere).
NOT_SETTINGS = ("resume", "no_progress", "log_every", "config", "output", "command", "chunk",
                "weights")


def settings_of(args) -> dict:
    """What a resumed run must share with the run it continues."""
    return {k: v for k, v in common.arguments_record(args).items() if k not in NOT_SETTINGS}


class Work:
    """The work folder of one output."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.flow_path = self.path / "flow.npz"
        self.frames_dir = self.path / "frames"
        self.progress_path = self.path / "progress.json"
        self.checkpoint_path = self.path / "multipass.npz"
        self.record_path = self.path / "run.json"
        self.progress: dict = {}

    def _read_progress(self) -> dict:
        try:
            return jsonio.loads(self.progress_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise UsageError(f"{self.progress_path}: unreadable ({e}); remove "
                             f"{self.path} to start again") from None

    def check(self, settings: dict, *, resume: bool) -> None:
        """Refuse to overwrite an unfinished run, or to resume one with other settings."""
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"{self.path}: exists and is not a folder")
        unfinished = self.progress_path.exists()
        if unfinished and not resume:
            raise UsageError(f"{self.path} holds an unfinished run: give --resume to "
                             "continue it, or remove the folder to start again")
        if resume and not unfinished:
            raise UsageError(f"--resume: nothing to resume in {self.path}")
        if resume:
            self.progress = self._read_progress()
            old = self.progress.get("settings", {})
            differ = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            if differ:
                flags = ", ".join("--" + k.replace("_", "-") for k in differ)
                raise UsageError(f"--resume: the stopped run had other settings ({flags}); "
                                 "give the same flags")
        else:
            self.progress = {"settings": settings, "frames": {}}

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self._write_progress()

    def _write_progress(self) -> None:
        common.write_json(self.progress_path, self.progress)

    def save_frame(self, i: int, frame, info: dict) -> None:
        """A finished frame of a sequential run, then its record."""
        save_image(self.frames_dir / f"{i:05d}.png", np.asarray(frame, np.float32) / 255.0)
        self.progress["frames"][str(i)] = info
        self._write_progress()

    def save_checkpoint(self, state: dict) -> None:
        """The multi-pass state after a chunk (atomically)."""
        arrays = {k: v for k, v in state.items() if k != "terms"}
        arrays.update({f"term_{k}": v for k, v in state["terms"].items()})
        write_atomic(self.checkpoint_path, lambda f: np.savez(f, **arrays),
                     what="the checkpoint")
        self.progress["passes"] = int(state["pass"])
        self._write_progress()

    def checkpoint(self) -> dict | None:
        """The multi-pass state saved last, or None (a damaged file: one-line UsageError)."""
        if not self.checkpoint_path.exists():
            return None
        try:
            with np.load(self.checkpoint_path) as z:
                state = {k: z[k] for k in z.files if not k.startswith("term_")}
                state["terms"] = {k[5:]: z[k].copy() for k in z.files if k.startswith("term_")}
            state["pass"], state["next"] = int(state["pass"]), int(state["next"])
        except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile,
                zlib.error) as e:
            raise UsageError(f"{self.checkpoint_path}: damaged, cannot resume from it "
                             f"({type(e).__name__}); remove {self.path} to start "
                             "again") from None
        return state

    def done_frames(self, shape) -> list:
        """The sequential run's finished frames, ``uint8``, from the first on."""
        frames = []
        for i in range(shape[0]):
            path = self.frames_dir / f"{i:05d}.png"
            if str(i) not in self.progress.get("frames", {}) or not path.exists():
                break
            with Image.open(path) as img:
                frame = np.asarray(img.convert("RGB"), np.uint8)
            if frame.shape != tuple(shape[1:]):
                raise UsageError(f"{path}: not a frame of this run")
            frames.append(frame)
        return frames

    def merged(self, result):
        """``result`` with the records of the frames finished before a resume."""
        losses, n_iter, seconds = (result.losses.copy(), result.n_iter.copy(),
                                   result.seconds.copy())
        terms = {k: v.copy() for k, v in result.terms.items()}
        for key, info in self.progress.get("frames", {}).items():
            i = int(key)
            if i < len(losses) and not np.isfinite(losses[i]):
                losses[i], n_iter[i], seconds[i] = info["loss"], info["iterations"], \
                    info["seconds"]
                for k, v in info.get("terms", {}).items():
                    terms.setdefault(k, np.full(len(losses), np.nan, np.float32))[i] = v
        return result._replace(losses=losses, n_iter=n_iter, seconds=seconds, terms=terms)

    def clean(self) -> None:
        """After a finished run: everything but the flow."""
        shutil.rmtree(self.frames_dir, ignore_errors=True)
        for p in (self.checkpoint_path, self.progress_path, self.record_path):
            p.unlink(missing_ok=True)
