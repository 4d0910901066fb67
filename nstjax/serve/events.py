"""What every open page sees: the studio's state, and its changes as server-sent events.

The worker thread publishes to a :class:`Hub`; each page's event stream is an ``asyncio``
queue the hub feeds through its event loop (``call_soon_threadsafe``).  A page that
connects, or reconnects after being closed, first receives the whole state (``state``),
then the changes: ``progress`` (loss points), ``image`` (the current picture), ``member``
(a finished sweep member), ``status`` (started, stopping, done, stopped, failed).  Pages
come and go without touching the run.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading

FINISHED = ("done", "stopped", "failed")
KEEP_ALIVE_S = 15.0
QUEUE_LIMIT = 2000


def idle_state() -> dict:
    return {"status": "idle", "kind": None, "id": None, "message": "", "iteration": 0,
            "total": 0, "points": [], "image": None, "image_iteration": None,
            "members": [], "n_members": 0, "files": {}, "timings": {}}


class Hub:
    """The current state and the pages listening to it (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._listeners: set = set()
        self.state = idle_state()

    def snapshot(self) -> dict:
        """A copy of the whole state (what a page needs to draw itself from scratch)."""
        with self._lock:
            return copy.deepcopy(self.state)

    def reset(self, **fields) -> None:
        """A new run's state, announced as ``state``."""
        with self._lock:
            self.state = {**idle_state(), **fields}
            self._deliver("state", copy.deepcopy(self.state))

    def publish(self, kind: str, data: dict, **fields) -> None:
        """Update the state with ``fields`` and send ``data`` as a ``kind`` event (under the
        lock: every page receives the events in the order the state took them)."""
        with self._lock:
            self._update(kind, data, fields)

    def publish_if(self, statuses, kind: str, data: dict, **fields) -> bool:
        """:meth:`publish` only while the state's status is one of ``statuses`` (checked and
        published at once); whether it was published."""
        with self._lock:
            if self.state["status"] not in statuses:
                return False
            self._update(kind, data, fields)
            return True

    def close(self) -> None:
        """End every page's event stream (the server is shutting down)."""
        with self._lock:
            self._deliver("closed", {})

    def listen(self) -> tuple[asyncio.Queue, dict]:
        """``(queue, state)``: a queue of ``(kind, data)`` for the calling event loop's
        stream and the state it starts from, taken together: each change is either in the
        state or in the queue, never both."""
        queue: asyncio.Queue = asyncio.Queue(QUEUE_LIMIT)
        with self._lock:
            self._listeners.add((asyncio.get_running_loop(), queue))
            return queue, copy.deepcopy(self.state)

    def forget(self, queue) -> None:
        with self._lock:
            self._listeners = {(lp, q) for lp, q in self._listeners if q is not queue}

    def _update(self, kind: str, data: dict, fields: dict) -> None:     # holds the lock
        if kind == "progress":
            self.state["points"].extend(data["points"])
        elif kind == "member":
            self.state["members"].append(data)
        self.state.update(fields)
        self._deliver(kind, data)

    def _deliver(self, kind: str, data: dict) -> None:                  # holds the lock
        gone = set()
        for loop, queue in self._listeners:
            try:
                loop.call_soon_threadsafe(_offer, queue, (kind, data))
            except RuntimeError:          # that page's loop is gone
                gone.add((loop, queue))
        self._listeners -= gone


def _offer(queue: asyncio.Queue, item) -> None:
    if queue.full():           # a page too slow to read: it gets the whole state again
        while not queue.empty():
            queue.get_nowait()
        item = ("resync", {})
    queue.put_nowait(item)


def sse(kind: str, data) -> str:
    """One server-sent event (``event:`` and one ``data:`` line of JSON)."""
    return f"event: {kind}\ndata: {json.dumps(data, allow_nan=False)}\n\n"


async def stream(hub: Hub, is_disconnected, *, until_finished: bool = False):
    """The event stream of one page: the state, then every change; with
    ``until_finished`` it ends after the current run ends (or at once when none runs)."""
    queue, state = hub.listen()
    try:
        yield sse("state", state)
        if until_finished and state["status"] not in ("running", "stopping"):
            return
        while True:
            try:
                kind, data = await asyncio.wait_for(queue.get(), KEEP_ALIVE_S)
            except asyncio.TimeoutError:
                if await is_disconnected():
                    return
                yield ": keep-alive\n\n"
                continue
            if kind == "closed":
                return
            if kind == "resync":          # the whole state again, and changes after it
                hub.forget(queue)
                queue, data = hub.listen()
                kind = "state"
            yield sse(kind, data)
            if until_finished and kind == "status" and data.get("status") in FINISHED:
                return
    finally:
        hub.forget(queue)
