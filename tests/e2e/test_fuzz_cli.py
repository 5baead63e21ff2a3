"""Malformed command-line arguments (issue 7): the offline verbs, no Temporal needed.

Every malformed input ends with exit code 2, a message on stderr naming the bad input, nothing on
stdout, no traceback, and the database as it was (every table's row count).

- A few real processes (`python starter.py …`, DATABASE_URL a SQLite file in tmp) for the verbs of
  issue 7: what the shell, the interpreter and argparse do is part of the contract.
- hypothesis then feeds many more malformed values through `starter.main(argv)` in this process
  (the same code, ~0.1 s a call instead of ~1.5 s): bad years, file names, lead ids, output paths,
  plan files and CSV files, and arguments that are not UTF-8 (as a GBK terminal would type them).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, inspect, select, table

from cli.common import for_stderr
from db.engine import make_engine, migrate
from service.imports import import_directory

ROOT = Path(__file__).resolve().parents[2]
NOT_NUL = st.characters(exclude_characters="\x00")  # argv cannot carry a NUL
IN_PROCESS = settings(max_examples=20, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A data dir whose SQLite database holds the example units and items (plans are checked against them)."""
    folder = tmp_path_factory.mktemp("cli")
    engine = make_engine(f"sqlite:///{folder / 'cli.db'}")
    migrate(engine)
    for kind in ("units", "items"):
        import_directory(engine, kind, ROOT / "examples" / f"{kind}.csv", now=datetime.now(timezone.utc))
    engine.dispose()
    return folder


def environment(folder: Path) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": f"sqlite:///{folder / 'cli.db'}", "SPOTCHECK_DATA_DIR": str(folder),
            "TEMPORAL_ADDRESS": "127.0.0.1:9", "PYTHONIOENCODING": "utf-8"}


def spotcheck(folder: Path, *args: str | bytes) -> subprocess.CompletedProcess:
    process = subprocess.run([sys.executable, str(ROOT / "starter.py"), *args], cwd=ROOT, env=environment(folder),
                             capture_output=True, timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, process.stdout.decode("utf-8"),
                                       process.stderr.decode("utf-8", "backslashreplace"))


def counts(folder: Path) -> dict[str, int]:
    engine = make_engine(f"sqlite:///{folder / 'cli.db'}")
    try:
        with engine.connect() as connection:
            return {name: connection.execute(select(func.count()).select_from(table(name))).scalar()
                    for name in inspect(connection).get_table_names()}
    finally:
        engine.dispose()


def refused(stdout: str, stderr: str, code: int, *named: str) -> None:
    assert code == 2, (code, stderr[-2000:])
    assert stdout == "", stdout[:500]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert stderr.strip()
    for part in named:
        assert part in stderr, (part, stderr[-1000:])


# --- real processes ------------------------------------------------------------------------------
def _deep_plan(folder: Path) -> str:
    path = folder / "deep.json"
    path.write_text('{"plan_code": "X", "tasks": ' + "[" * 50_000 + "]" * 50_000 + "}")
    return str(path)


def _gbk_csv(folder: Path) -> str:
    path = folder / "gbk.csv"
    path.write_bytes("unit_code,name,parent_code\n360200-SCJ,景德镇市市场监督管理局,\n".encode("gbk"))
    return str(path)


PROCESSES = {  # id: (arguments, made in the data dir, what stderr must name)
    "import-gbk": (lambda f: ["import", "units", _gbk_csv(f)], ["gbk.csv", "line 2 is not UTF-8"]),
    "plan-start-nested": (lambda f: ["plan", "start", _deep_plan(f)], ["deep.json", "line 1 column", "nested"]),
    "metrics-year-x": (lambda f: ["metrics", "--year", "x"], ["--year", "'x'"]),
    "draw-verify-missing": (lambda f: ["draw", "verify", "--record", "missing.json", "--population", "x.csv"],
                            ["missing.json", "No such file"]),
    "case-link-unknown": (lambda f: ["case", "link", "no-such-lead", "D-2025-1"], ["no-such-lead", "not found"]),
    "report-out-nowhere": (lambda f: ["report", "--year", "2025", "--out", "/nonexistent/dir/x.html"],
                           ["--out", "/nonexistent/dir"]),
    "case-link-gbk-bytes": (lambda f: ["case", "link", "张三的线索".encode("gbk"), "D-1"], ["not UTF-8", "\\xd5\\xc5"]),
}


@pytest.mark.parametrize("case", list(PROCESSES))
def test_a_malformed_command_exits_2_naming_the_input(home, case):
    make, named = PROCESSES[case]
    before = counts(home)
    run = spotcheck(home, *make(home))
    refused(run.stdout, run.stderr, run.returncode, *named)
    assert counts(home) == before


# --- in this process -------------------------------------------------------------------------------
@pytest.fixture
def main(home, monkeypatch):
    """starter.main(argv) here, against the module's database: (exit code, stdout, stderr)."""
    for name, value in environment(home).items():
        monkeypatch.setenv(name, value)
    import starter

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = starter.main(list(argv))
            except SystemExit as exit_:  # argparse
                code = exit_.code
        return code, out.getvalue(), err.getvalue()

    return run


def not_a_year(text: str) -> bool:
    try:
        return not 2000 <= int(text) <= 2999
    except ValueError:
        return True


@given(year=st.one_of(st.text(NOT_NUL, max_size=12), st.integers().map(str), st.just("9" * 5000)).filter(not_a_year),
       verb=st.sampled_from(["metrics", "report", "publication"]))
@IN_PROCESS
def test_a_bad_year_is_refused_naming_year(main, home, year, verb):
    argv = {"metrics": ["metrics"], "report": ["report", "--out", str(home / "r.html")],
            "publication": ["publication", "export"]}[verb]
    before = counts(home)
    code, out, err = main(*argv, f"--year={year}")
    refused(out, err, code, "--year")
    assert counts(home) == before and not (home / "r.html").exists()


FILE_NAMES = st.text(NOT_NUL, min_size=1, max_size=30).filter(lambda name: name not in (".", "..") and "/" not in name)


@given(record=FILE_NAMES, population=FILE_NAMES)
@example(record="r\ud800.json", population="p.csv").via("a lone surrogate: no file name at all")
@example(record="\udcd5\udcc5.json", population="\ud800").via("GBK bytes, surrogate-escaped: a file name")
@example(record="\n", population="0").via("a line break in a file name: escaped, not a second line of the error")
@IN_PROCESS
def test_a_missing_audit_package_is_refused_naming_the_file(main, home, tmp_path, record, population):
    record_path = tmp_path / "absent" / record
    code, out, err = main("draw", "verify", f"--record={record_path}", f"--population={tmp_path / population}")
    if any(not "\udc80" <= c <= "\udcff" for c in record if _escaped(c)):  # no bytes make it: not even a file name
        refused(out, err, code, "not UTF-8")
    else:
        refused(out, err, code, for_stderr(str(record_path)), "No such file")  # its control characters escaped


def _escaped(text: str) -> bool:
    """What Python makes of bytes that are not UTF-8 in argv (surrogate escapes), or a lone surrogate."""
    return any("\ud800" <= c <= "\udfff" for c in text)


@given(lead=st.text(NOT_NUL, max_size=40), decision=st.text(NOT_NUL, max_size=20))
@example(lead="\udcd5\udcc5", decision="D-1").via("GBK bytes typed on a GBK terminal")
@example(lead="-x", decision=" ").via("an option-like lead, a blank decision")
@IN_PROCESS
def test_an_unknown_case_lead_is_refused_naming_it(main, home, lead, decision):
    before = counts(home)
    code, out, err = main("case", "link", "--", lead, decision)
    if _escaped(lead) or _escaped(decision):
        refused(out, err, code, "not UTF-8")
    else:
        refused(out, err, code, repr(lead))  # "case lead '…' not found", or "empty decision number for case lead '…'"
    assert counts(home) == before


@given(name=FILE_NAMES, where=st.sampled_from(["missing-dir", "a-directory"]))
@IN_PROCESS
def test_a_report_that_cannot_be_written_is_refused_naming_out(main, home, tmp_path, name, where):
    out_path = tmp_path / "no-such-dir" / name if where == "missing-dir" else tmp_path
    code, out, err = main("report", "--year", "2025", f"--out={out_path}")
    refused(out, err, code, "--out")
    assert not (tmp_path / "no-such-dir").exists()


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=10)


@given(content=st.one_of(st.binary(max_size=200), JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                         st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))))
@IN_PROCESS
def test_a_malformed_plan_file_is_refused_and_nothing_is_stored(main, home, tmp_path, content):
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    before = counts(home)
    code, out, err = main("plan", "start", str(path))
    refused(out, err, code, "plan.json")
    assert counts(home) == before


@given(kind=st.sampled_from(["units", "items", "entities", "inspectors"]),
       content=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                         st.sampled_from([b"", b"\xef\xbb\xbf", b"uscc\n\x00", b'unit_code,name,parent_code\n"open,x,\n'])))
@IN_PROCESS
def test_a_malformed_directory_file_is_refused_and_nothing_changes(main, home, tmp_path, kind, content):
    path = tmp_path / f"{kind}.csv"
    path.write_bytes(content)
    before = counts(home)
    code, out, err = main("import", kind, str(path), "--json")
    refused(out, err, code, f"{kind}.csv")
    assert counts(home) == before


@pytest.mark.parametrize("argv, named", [
    (["plan", "start", "{dir}"], ["{dir}", "Is a directory"]),
    (["import", "units", "{dir}"], ["{dir}", "is a directory"]),
    (["draw", "verify", "--record", "{dir}", "--population", "{dir}/p.csv"], ["{dir}", "Is a directory"]),
    (["draw", "export", "T-1", "--record", "{dir}", "--population", "{dir}/p.csv"], ["--record", "is a directory"]),
    (["draw", "export", "T-1", "--record", "{dir}/no/r.json", "--population", "{dir}/p.csv"], ["--record", "does not exist"]),
    (["dispatch", "export", "T-1", "--record", "{dir}"], ["--record", "is a directory"]),
    (["report", "--year", "2025", "--out", "{dir}"], ["--out", "is a directory"]),
    (["draw", "verify", "T-1", "--draw-seq", "99999999999999999999"], ["--draw-seq"]),
    (["draw", "export", "T-1", "--record", "r.json", "--population", "p.csv", "--draw-seq", "0"], ["--draw-seq"]),
    (["metrics", "--year", "99999999999999999999"], ["--year"]),
])
def test_a_directory_or_an_impossible_number_where_a_file_or_a_count_goes(main, home, tmp_path, argv, named):
    before = counts(home)
    code, out, err = main(*[a.replace("{dir}", str(tmp_path)) for a in argv])
    refused(out, err, code, *[n.replace("{dir}", str(tmp_path)) for n in named])
    assert counts(home) == before


# --- against the dev server ----------------------------------------------------------------------
# Random text (control and bidi characters, huge, empty) in each argument of every verb that reaches a workflow,
# through cli.main against the dev server and the project's workers: each run ends in exit 0 or one sentence
# (exit 2), never a traceback or a hang, and the target then takes its next valid command.
HOSTILE = st.one_of(
    st.text(NOT_NUL, max_size=40),
    st.sampled_from(["", " ", "\x1b[2J\x1b[31m", "\u202eI013", "\x07", "\t\n", "‮", "I" * 33, "-x", "NOPE-0001"]),
    st.text(NOT_NUL, min_size=1, max_size=3).map(lambda t: t * 40_000),  # 40-120 K characters
)


def _verbs(task_id: str, uscc: str, team: list[str], plan_code: str) -> dict:
    """Each verb's argv with two slots for hostile text (a, b); the other arguments are valid. Options as
    --opt=value and positionals after --, so that argparse reads a value that starts with - as a value. The human
    verbs act as the logged-in user (ACTS_AS), so no argument names the actor."""
    target = ["--", task_id, uscc]
    return {
        "task show": lambda a, b: ["task", "show", "--", a],
        "task history": lambda a, b: ["task", "history", f"--target={a}", "--", task_id],
        "task list": lambda a, b: ["task", "list", f"--plan={a}", f"--unit={b}"],
        "task accept": lambda a, b: ["task", "accept", "--", task_id, a],
        "task arrive": lambda a, b: ["task", "arrive", "--", a, b],
        "draw target": lambda a, b: ["draw", "target", f"--reason={a}", "--", task_id, b],
        "draw entropy": lambda a, b: ["draw", "entropy", "--", task_id, a],
        "draw redraw": lambda a, b: ["draw", "redraw", f"--reason={a}", "--", b],
        "dispatch assign": lambda a, b: ["dispatch", "assign", f"--unit={a}", f"--inspector={team[0]}",
                                         f"--inspector={b}", f"--reason={a}", *target],
        "check record": lambda a, b: ["check", "record", f"--inspector={team[0]}", f"--inspector={a}",
                                      f"--method={b}", f"--evidence={a}", *target],
        "result enter": lambda a, b: ["result", "enter", f"--category={a}", f"--note={b}", f"--finding={a}:pass",
                                      *target],
        "result review": lambda a, b: ["result", "review", f"--return={b}", "--", task_id, a],
        "case recheck": lambda a, b: ["case", "recheck", "--passed", f"--note={b}", "--", task_id, a],
        "case link": lambda a, b: ["case", "link", "--", a, b],
        "case list": lambda a, b: ["case", "list", f"--task={a}", f"--state={b}"],
        "plan adjust": lambda a, b: ["plan", "adjust", f"--cancel-task={a}", f"--reason={b}", "--", plan_code],
    }


VERBS = list(_verbs("T", "U", ["A", "B"], "P"))
# Who runs each human verb: the team's leader, a supervisor of the unit, a reviewer of the unit not on the team.
ACTS_AS = {"task accept": "leader", "task arrive": "leader", "dispatch assign": "supervisor",
           "check record": "leader", "result enter": "leader", "result review": "reviewer", "case recheck": "leader",
           "draw redraw": "planner", "plan adjust": "planner"}


@pytest.fixture(scope="module")
def running(postgres_url, tmp_path_factory):
    """One dev server and the workers for the module, a plan whose targets wait for their check, and the people
    who act on its first target, each logged in."""
    from tests.hostile.system import running_system
    from tests.workflows.support import people

    with running_system(postgres_url, tmp_path_factory.mktemp("fuzz-running")) as system:
        task_id, usccs = system.start_plan("C15", window_days=90)
        team = system.team(task_id, usccs[0])
        acting = {"leader": team[0], "supervisor": people(system.engine, "supervisor")[0],
                  "reviewer": next(r for r in people(system.engine, "reviewer") if r not in team),
                  "planner": system.planner()}
        yield system, task_id, usccs[0], team, {role: system.as_user(who) for role, who in acting.items()}


def ended_as_a_sentence(code: int, out: str, err: str) -> None:
    assert "Traceback" not in err, err[-3000:]
    if code != 0:
        assert code == 2, (code, err[-2000:])
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("spotcheck "), err[-2000:]
        assert len(err) < 4000, err[:2000]  # a huge argument is named, not echoed whole


@pytest.mark.postgres
@given(verb=st.sampled_from(VERBS), a=HOSTILE, b=HOSTILE)
@example(verb="task show", a="\x1f" * 40_000, b="").via("a huge workflow id broke the gRPC call: exit 1, INTERNAL")
@example(verb="task arrive", a="T\n1", b="U\x1b[2J").via("a line feed split the sentence in two")
@example(verb="case list", a="", b="0" * 40_000).via("a huge value was echoed whole")
@example(verb="task history", a="\x1f" * 40_000, b="").via("a huge --target broke the history read: exit 1")
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_hostile_text_in_any_argument_ends_in_success_or_one_sentence(running, verb, a, b):
    system, task_id, uscc, team, as_ = running
    argv = _verbs(task_id, uscc, team, task_id.removesuffix("-T1"))[verb](a, b)
    spotcheck = as_[ACTS_AS[verb]] if verb in ACTS_AS else system.spotcheck
    ended_as_a_sentence(*spotcheck(*argv, timeout=30))


@pytest.mark.postgres
def test_after_the_hostile_text_the_target_takes_its_next_valid_command(running):
    system, task_id, uscc, team, as_ = running
    code, out, err = system.spotcheck("task", "show", task_id, "--json")
    assert code == 0, err
    checked = system.status(task_id, uscc).check is not None
    argv = (["result", "enter", task_id, uscc, "--category", "no_issue",
             *[arg for point in ("GS-001-1", "GS-001-2", "GS-001-3") for arg in ("--finding", f"{point}:pass")]]
            if checked else
            ["check", "record", task_id, uscc, "--inspector", team[0], "--inspector", team[1], "--method", "document"])
    code, out, err = as_["leader"](*argv)
    assert code == 0 and err == "", err
