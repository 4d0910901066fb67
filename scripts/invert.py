#!/usr/bin/env python
"""``python scripts/invert.py ...`` is ``nstjax invert ...`` (see ``--help``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nstjax.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(["invert", *sys.argv[1:]]))
