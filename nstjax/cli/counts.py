"""argparse types of the count flags (``--iters``, ``--history``, ``--chunk``, frames, ...)."""

from __future__ import annotations

import argparse

MAX_COUNT = 2 ** 31 - 1    # the compiled loops count iterations, frames and chunks in int32


def count(text: str) -> int:
    """An int that an int32 counter holds; above :data:`MAX_COUNT`, argparse's one line and
    exit 2 (never an ``OverflowError`` from inside a solve)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{value} is above {MAX_COUNT}, the largest count "
                                         "its 32-bit counter holds")
    return value
