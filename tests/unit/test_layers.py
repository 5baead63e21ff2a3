"""The layers (README, Layout): a module imports only from its own layer or the layers below it.

doors (starter, worker, cli, api, public) → service | read → runtime → workflows → activities → store → db → domain
(audit, the independent verifier, sits beside domain). service and read never import each other; SQLAlchemy is
imported only by store/ and db/; domain/ and audit/ do no I/O through Temporal or the database.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LAYER = {  # top-level package or module → rank (lower is higher up)
    "starter": 0, "worker": 0, "cli": 0, "api": 0, "public": 0,
    "service": 1, "read": 1,
    "runtime": 2,
    "workflows": 3,
    "activities": 4,
    "store": 5,
    "db": 6,
    "domain": 7, "audit": 7,
}
PEERS_APART = {("service", "read"), ("read", "service"), ("domain", "audit")}  # same rank, no import
NOT_IN = {  # third-party packages a layer must not import
    "sqlalchemy": set(LAYER) - {"store", "db"},
    "psycopg2": set(LAYER) - {"store", "db"},
    "temporalio": {"store", "db", "domain", "audit"},
    "fastapi": set(LAYER) - {"api"},
}


def product_modules() -> list[Path]:
    paths = [ROOT / "starter.py", ROOT / "worker.py"]
    for package in LAYER:
        folder = ROOT / package
        if folder.is_dir():
            paths += [p for p in folder.rglob("*.py") if "migrations" not in p.parts]
    return sorted(p for p in paths if p.exists())


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every import in the file, at any depth (inside functions and TYPE_CHECKING blocks too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations(path: Path, root: Path = ROOT) -> list[str]:
    here = path.relative_to(root).parts[0].removesuffix(".py")
    problems = []
    for line, module in imports_of(path):
        top = module.split(".")[0]
        where = f"{path.relative_to(root)}:{line} imports {module}"
        if top in NOT_IN and here in NOT_IN[top]:
            problems.append(f"{where}: {top} is not for {here}/")
        if top not in LAYER or top == here:
            continue
        if LAYER[top] < LAYER[here]:
            problems.append(f"{where}: {top} is above {here}")
        elif (here, top) in PEERS_APART:
            problems.append(f"{where}: {here} and {top} do not import each other")
    return problems


def test_every_module_imports_only_downwards():
    problems = [p for path in product_modules() for p in violations(path)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("folder, source, expected", [
    ("domain", "from cli.common import emit\n", "domain/bad.py:1 imports cli.common: cli is above domain"),
    ("domain", "import sqlalchemy\n", "domain/bad.py:1 imports sqlalchemy: sqlalchemy is not for domain/"),
    ("domain", "def f():\n    from service.targets import send\n",
     "domain/bad.py:2 imports service.targets: service is above domain"),
    ("activities", "from sqlalchemy import select\n",
     "activities/bad.py:1 imports sqlalchemy: sqlalchemy is not for activities/"),
    ("read", "from service.targets import send\n",
     "read/bad.py:1 imports service.targets: read and service do not import each other"),
    ("domain", "from audit.verify import verify_draw\n",
     "domain/bad.py:1 imports audit.verify: domain and audit do not import each other"),
])
def test_the_check_finds_a_wrong_import(tmp_path, folder, source, expected):
    """The rule fails where it should."""
    (tmp_path / folder).mkdir()
    module = tmp_path / folder / "bad.py"
    module.write_text(source)
    assert violations(module, root=tmp_path) == [expected]


def test_a_downward_import_passes(tmp_path):
    (tmp_path / "service").mkdir()
    module = tmp_path / "service" / "ok.py"
    module.write_text("from store.targets import opened_targets\nfrom domain.access import Actor\n")
    assert violations(module, root=tmp_path) == []
