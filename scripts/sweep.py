#!/usr/bin/env python
"""``python scripts/sweep.py ...`` is ``nstjax sweep ...`` (see ``--help``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nstjax.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(["sweep", *sys.argv[1:]]))
