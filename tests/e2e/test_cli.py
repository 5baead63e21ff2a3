"""Bad input at the command line: a clear error naming the input, exit 2, nothing changed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from db import schema
from db.engine import make_engine

ROOT = Path(__file__).resolve().parents[2]


def spotcheck(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "SPOTCHECK_DATA_DIR": str(tmp_path)}
    return subprocess.run([sys.executable, str(ROOT / "starter.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def count(tmp_path: Path, table) -> int:
    with make_engine(f"sqlite:///{tmp_path / 'cli.db'}").connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar()


def test_malformed_plan_file_names_file_line_and_column(tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text('{"plan_code": "X-1",\n "year": 2026,\n "tasks": [}\n')
    run = spotcheck(tmp_path, "plan", "start", str(bad))
    assert run.returncode == 2
    assert "plan.json" in run.stderr and "line 3" in run.stderr
    assert run.stdout == ""
    assert count(tmp_path, schema.plans) == 0


def test_plan_with_unknown_item_is_refused_and_nothing_is_stored(tmp_path):
    for kind in ("units", "items"):
        assert spotcheck(tmp_path, "import", kind, str(ROOT / "examples" / f"{kind}.csv")).returncode == 0
    plan = json.loads((ROOT / "examples" / "plan-template.json").read_text())
    plan["tasks"][0]["items"] = ["NO-SUCH-ITEM"]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan, ensure_ascii=False))
    run = spotcheck(tmp_path, "plan", "start", str(path))
    assert run.returncode == 2
    assert "JDZ-DEMO-0001" in run.stderr and "NO-SUCH-ITEM" in run.stderr
    assert count(tmp_path, schema.plans) == 0 and count(tmp_path, schema.plan_tasks) == 0


def test_bad_entity_row_names_line_column_and_value(tmp_path):
    csv = tmp_path / "entities.csv"
    csv.write_text("uscc,name,subject_type,region,industry,risk_class,status,address\n"
                   "91360200104133633X,某公司,enterprise,360200,E5012,B,active,景德镇\n")
    run = spotcheck(tmp_path, "import", "entities", str(csv))
    assert run.returncode == 2
    assert "line 2" in run.stderr and "uscc" in run.stderr and "91360200104133633X" in run.stderr
    assert count(tmp_path, schema.entities) == 0


def test_json_output_is_one_document(tmp_path):
    run = spotcheck(tmp_path, "import", "units", str(ROOT / "examples" / "units.csv"), "--json")
    assert run.returncode == 0
    assert json.loads(run.stdout)["kind"] == "units"
