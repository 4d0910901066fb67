"""A run's memory plan: its planned peak as a function of the members it runs at once.

A plan is made before the work, from what the process holds (measured), XLA's figures for
the run's compiled programs (:mod:`nstjax.run.memory`) and what the host keeps per member;
the commands write it beside their outputs with the measured peak
(``memory: {planned_bytes, peak_bytes, available_bytes}``), and ``benchmarks/memory.py``
compares the two from 2 to 400 sweep members and 256 to 2048 px.
"""

from __future__ import annotations

from typing import NamedTuple

from nstjax.run import memory


class MemoryPlan(NamedTuple):
    """The planned peak resident memory of a run, as a function of its member count.

    ``peak(k) = resident + compile + max_p (fixed_p + k · per_member_p) + k · host``: what the
    process holds when the plan is made (measured), the programs still to compile, the
    largest of the run's programs (each a straight line in the member count, from XLA's
    figures for 1 and 2 members), and the results the host keeps per member.

    Attributes:
      resident: bytes resident in the process when the plan was made (``VmRSS``).
      compile: bytes the programs still to be compiled will keep.
      programs: ``((fixed, per_member), ...)``, one line per program, in bytes.
      available: bytes the machine had free when the plan was made
        (:func:`nstjax.run.memory.available_bytes`).
      host_per_member: bytes of results the host keeps for each member.
      compiled: member counts whose programs exist already (no ``compile`` for them).
    """

    resident: int
    compile: int
    programs: tuple
    available: int
    host_per_member: int = 0
    compiled: tuple = ()

    def new_bytes(self, members: int = 1) -> int:
        """Bytes the run adds to what is resident now, at its peak."""
        k = max(int(members), 1)
        program = max((fixed + k * per for fixed, per in self.programs), default=0)
        code = 0 if k in self.compiled else self.compile
        return code + program + k * self.host_per_member

    def peak_bytes(self, members: int = 1) -> int:
        """The process's planned peak resident memory."""
        return self.resident + self.new_bytes(members)

    def members_that_fit(self, fraction: float = 0.8) -> int:
        """The most members whose :meth:`new_bytes` is within ``fraction`` of
        :attr:`available` (0 when not even one is)."""
        budget = fraction * self.available
        if self.new_bytes(1) > budget:
            return 0
        lo, hi = 1, 2
        while self.new_bytes(hi) <= budget and hi < 1 << 40:
            lo, hi = hi, 2 * hi
        while hi - lo > 1:             # the largest k with new_bytes(k) <= budget
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.new_bytes(mid) <= budget else (lo, mid)
        return lo

    def record(self, members: int = 1, *, peak: int | None = None) -> dict:
        """``{planned_bytes, peak_bytes, available_bytes}`` for a sidecar; ``peak_bytes``
        is the measured peak (:func:`nstjax.run.memory.measured_peak_bytes`), ``None`` until it is known."""
        return {"planned_bytes": int(self.peak_bytes(members)),
                "peak_bytes": None if peak is None else int(peak),
                "available_bytes": int(self.available)}


def program_line(at_one: memory.ProgramMemory, at_two: memory.ProgramMemory, *,
                 resident_inputs: int = 0) -> tuple[int, int]:
    """``(fixed, per_member)`` bytes of a vmapped program from its figures for 1 and 2
    members (:func:`nstjax.run.memory.program_memory`): its arguments, less ``resident_inputs`` (inputs that
    exist already, such as the network's weights), plus what a call allocates, with the
    CPU's first-call growth (:data:`memory.CPU_FIRST_CALL`)."""
    import jax
    first = memory.CPU_FIRST_CALL if jax.default_backend() == "cpu" else 1.0

    def need(pm):
        return max(pm.argument - resident_inputs, 0) + first * pm.new

    one, two = need(at_one), need(at_two)
    per = max(two - one, 1.0)
    return int(max(one - per, 0.0)), int(per)
