#!/usr/bin/env python
"""``python scripts/convert_weights.py [SOURCE]`` is ``nstjax convert-weights [SOURCE]``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nstjax.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(["convert-weights", *sys.argv[1:]]))
