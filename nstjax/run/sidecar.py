"""The sidecar: a run's JSON record beside its output, written and read in one place.

``<output>.json`` (a sweep's ``sweep.json``) holds the command, its ``arguments`` under the
flags' names (what ``--config`` and the web page's "reopen" read back into a
:class:`~nstjax.run.spec.RunSpec`) and what the run did (the resolved objective and solver,
losses, timings, memory).  The command line and the page write it through
:meth:`Sidecar.write`, as strict JSON (no NaN tokens), atomically.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from nstjax.io import jsonio
from nstjax.io.image_writing import write_text_atomic
from nstjax.run.spec import RunSpec


class SidecarError(ValueError):
    """A file that is not the sidecar asked for, in one line."""


@dataclasses.dataclass(frozen=True)
class Sidecar:
    """A run's record.

    Attributes:
      command: ``"stylize"``, ``"sweep"``, ``"video"``, ...
      arguments: the run's settings under the flags' destinations (JSON values).
      fields: the rest of the record, in order (``objective``, ``loss_history``, ...).
    """

    command: str
    arguments: Mapping[str, Any]
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def record(self) -> dict:
        """The JSON object: ``command``, ``arguments``, then ``fields``."""
        return {"command": self.command, "arguments": dict(self.arguments), **self.fields}

    def spec(self) -> RunSpec:
        """The run's settings as a :class:`RunSpec` (unknown arguments ignored)."""
        return RunSpec.from_arguments(self.arguments)

    def write(self, path) -> Path:
        """Strict JSON at ``path``, written atomically (no half-written sidecar)."""
        path = Path(path)
        write_text_atomic(path, jsonio.dumps(self.record(), indent=2))
        return path

    @classmethod
    def parse(cls, record, *, command: str | None = None) -> Sidecar:
        """The sidecar of a decoded JSON ``record``; :class:`SidecarError` when it has no
        ``arguments`` object or (with ``command``) is another command's."""
        arguments = record.get("arguments") if isinstance(record, dict) else None
        if not isinstance(arguments, dict):
            raise SidecarError("not a sidecar of an nstjax run (no \"arguments\")")
        if command is not None and record.get("command") != command:
            raise SidecarError(f"not a sidecar of an nstjax {command} run")
        fields = {k: v for k, v in record.items() if k not in ("command", "arguments")}
        return cls(str(record.get("command")), arguments, fields)

    @classmethod
    def read(cls, path, *, command: str | None = None) -> Sidecar:
        """The sidecar at ``path``; every failure is one :class:`SidecarError` line that
        names the file."""
        path = Path(path)
        try:
            record = jsonio.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SidecarError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise SidecarError(f"{path}: not a readable JSON sidecar ({e})") from None
        try:
            return cls.parse(record, command=command)
        except SidecarError as e:
            raise SidecarError(f"{path}: {e}") from None
