#!/usr/bin/env python
"""Neural style transfer from the command line: ``python scripts/stylize.py --help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nstjax.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
