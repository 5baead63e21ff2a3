"""The product code has no unused or undefined names and its imports are sorted (ruff, pinned in the dev extras)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ["activities", "api", "audit", "cli", "db", "domain", "public", "read", "runtime", "service", "store",
           "workflows", "starter.py", "worker.py"]


def test_ruff_finds_nothing_in_the_product_code():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is not installed: pip install the dev extra"
    done = subprocess.run([ruff, "check", "--select", "F,I", "--no-cache", *PRODUCT], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
