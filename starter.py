"""`spotcheck`: the operator command line (contract.md); `python starter.py …` is the same. The verbs live in cli/."""
from __future__ import annotations

import sys

from cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
