"""docs/runbooks/backup-restore.md, tried: the project database dumped with pg_dump, restored with pg_restore
into a new database, and `draw verify`, `task history --verify-archive` and `metrics` print the same on both.

The source holds a real draw (the activities run directly, tests/integration/test_audit_package.py) and a
history archive whose first entry is a real task history (tests/histories) that the dev server does not
have, so the timeline is read from the restored archive."""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, make_url, text
from temporalio.client import WorkflowHistory

from db.engine import normalize_url
from domain.archive import ClosedRun
from store.archive import append_entry
from tests.conftest import own_schema
from tests.integration.devserver import ROOT, Cli
from tests.integration.test_audit_package import build_draw

pytestmark = pytest.mark.postgres
TASK_HISTORY = ROOT / "tests/histories/InspectionTaskWorkflow/0.1.0-3.json"


def archive_task_history(engine) -> str:
    """The recorded task history, archived as a closed run; its task id."""
    document = TASK_HISTORY.read_text()
    first = json.loads(document)["events"][0]["workflowExecutionStartedEventAttributes"]
    task = json.loads(base64.b64decode(first["input"]["payloads"][0]["data"]))
    workflow_id = f"task/{task['task_id']}"
    history = WorkflowHistory.from_json(workflow_id, document)
    run_id = history.events[0].workflow_execution_started_event_attributes.original_execution_run_id
    assert append_entry(engine, ClosedRun(workflow_id, run_id, "InspectionTaskWorkflow",
                                          history.events[-1].event_time.ToDatetime(timezone.utc)),
                        history.to_json()) == 1
    return task["task_id"]


def pg(tool: str, *args: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} not found: install the PostgreSQL client (postgresql-client)")
    run = subprocess.run([tool, *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{tool} {' '.join(args)}: {run.stderr}"


async def test_a_restored_database_verifies_and_counts_the_same(env, postgres_url, tmp_path):
    base = normalize_url(postgres_url)
    restored_db = f"spotcheck_restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with own_schema(postgres_url) as source:
        drawn = build_draw(source.engine)
        archived_task = archive_task_history(source.engine)
        # The runbook's commands: a custom-format dump of the project database, restored into a new one.
        dump = tmp_path / "spotcheck.dump"
        plain = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)  # libpq's form
        pg("pg_dump", "--format=custom", f"--schema={source.name}", f"--file={dump}", plain)
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{restored_db}"'))
        try:
            restored_url = plain.rsplit("/", 1)[0] + f"/{restored_db}"
            pg("pg_restore", "--exit-on-error", "--no-owner", f"--dbname={restored_url}", str(dump))
            year = datetime.now(timezone.utc).year
            outputs = {}
            for name, url in [("source", source.url), ("restored", f"{restored_url}?options=-csearch_path%3D{source.name}")]:
                spotcheck = Cli(env, url, tmp_path / name)
                (tmp_path / name).mkdir()
                outputs[name] = [
                    await spotcheck.json("draw", "verify", drawn.task_id),
                    await spotcheck.json("task", "history", archived_task, "--verify-archive"),
                    await spotcheck.json("metrics", "--year", str(year)),
                ]
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{restored_db}" WITH (FORCE)'))
            admin.dispose()
    verify, history, metrics = outputs["source"]
    assert verify["ok"] is True, verify
    assert history["archive"]["ok"] is True and history["archive"]["entries"] == 1
    assert any(e["event"] for e in history["events"]), "the timeline was read from the archive"
    assert metrics["year"] == year
    assert outputs["restored"] == outputs["source"]
