"""The CLI's human verbs act as the logged-in user (api.md "Who acted is who authenticated"): `spotcheck login`
keeps a 0600 token in the user's config, SPOTCHECK_TOKEN serves scripts, no flag chooses the actor, and a
directory or account change cuts the login off at the next command."""
from __future__ import annotations

import io
import json
import stat
from datetime import datetime, timedelta, timezone

import pytest
from argon2 import PasswordHasher

import cli
from cli.common import person
from domain.access import Actor
from runtime import config
from runtime.context import Context
from service import identity
from service.imports import import_examples
from store import directory
from store.plans import load_plan
from domain.workdays import SHANGHAI
from tests.conftest import own_schema
from tests.workflows.support import plan_file

pytestmark = pytest.mark.postgres
ADMIN = Actor(id="root", roles=frozenset({"admin"}), unit=None, method="cli-local")
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module", autouse=True)
def cheap_argon2id():
    saved = identity._hasher
    identity._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    identity._dummy_hash.cache_clear()
    yield
    identity._hasher = saved
    identity._dummy_hash.cache_clear()


@pytest.fixture(scope="module")
def db(postgres_url):
    with own_schema(postgres_url) as db:
        import_examples(db.engine, now=datetime.now(timezone.utc) - timedelta(days=1))
        plan, _ = load_plan(db.engine, plan_file(datetime.now(SHANGHAI).date(), "LOGIN"), "plan.json")
        for user in ("JDZ-I013", "JDZ-I022", "ops.audit"):
            identity.add_user(db.engine, ADMIN, user, PASSWORD, roles=["auditor"] if user == "ops.audit" else [])
        db.task_id = plan.tasks[0].task_id
        yield db


class Shell:
    """`spotcheck …` in this process, as one person at one terminal."""

    def __init__(self, db, tmp_path, monkeypatch, capsys):
        self.db, self.monkeypatch, self.capsys = db, monkeypatch, capsys
        self.config = tmp_path / "config"
        monkeypatch.setenv("DATABASE_URL", db.url)
        monkeypatch.setenv("SPOTCHECK_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(self.config))
        monkeypatch.delenv("SPOTCHECK_TOKEN", raising=False)
        monkeypatch.delenv("SPOTCHECK_API_SECRET", raising=False)

    def __call__(self, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = cli.main(list(argv))
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def login(self, user: str, *extra: str) -> str:
        code, out, err = self("login", user, "--password-stdin", *extra, stdin=PASSWORD + "\n")
        assert code == 0, err
        return out

    def actor(self) -> Actor:
        return person(Context(config.load(), engine=self.db.engine))


@pytest.fixture
def shell(db, tmp_path, monkeypatch, capsys):
    return Shell(db, tmp_path, monkeypatch, capsys)


def test_login_keeps_a_private_token_and_the_human_verbs_act_as_that_user(shell):
    assert "logged in as JDZ-I013 (inspector)" in shell.login("JDZ-I013")
    token = shell.config / "spotcheck" / "token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and stat.S_IMODE(token.parent.stat().st_mode) == 0o700
    assert shell.actor() == Actor(id="JDZ-I013", roles=frozenset({"inspector"}), unit="360202-SCJ",
                                  method="cli-local")
    assert shell("logout") == (0, "logged out\n", "")
    assert not token.exists()


def test_without_a_login_a_human_verb_is_refused_before_anything_is_sent(shell):
    code, _, err = shell("result", "enter", shell.db.task_id, "91360202MAMGKALJ7B", "--category", "no_issue")
    assert code == 2 and "not logged in: run `spotcheck login ID`" in err


@pytest.mark.parametrize("argv", [
    ["result", "enter", "T", "U", "--inspector", "JDZ-I013", "--category", "no_issue"],
    ["result", "review", "T", "U", "--reviewer", "JDZ-I020", "--approve"],
    ["dispatch", "assign", "T", "U", "--unit", "360202-SCJ", "--inspector", "JDZ-I013", "--by", "JDZ-I022",
     "--reason", "sick"],
    ["task", "accept", "T", "U", "--inspector", "JDZ-I013"],
    ["case", "recheck", "T", "U", "--inspector", "JDZ-I013", "--passed"],
    ["draw", "redraw", "T", "--reason", "r", "--approver", "JDZ-I011"],
    ["plan", "adjust", "P", "--cancel-task", "T", "--reason", "r", "--approver", "JDZ-I011"],
    ["publication", "correct", "T", "U", "--category", "other", "--reason", "r", "--approver", "JDZ-I022"],
    ["publication", "stop-decide", "T", "U", "--approve", "--by", "JDZ-I022"],
], ids=["enter", "review", "assign", "accept", "recheck", "redraw", "adjust", "correct", "stop-decide"])
def test_no_flag_chooses_the_actor(shell, argv):
    with pytest.raises(SystemExit) as usage:
        shell(*argv)
    assert usage.value.code == 2 and "unrecognized arguments: --" in shell.capsys.readouterr().err


def test_a_manual_assignment_at_the_command_line_names_each_broken_rule(shell):
    shell.login("JDZ-I022")
    code, _, err = shell("dispatch", "assign", shell.db.task_id, "91360202MAMGKALJ7B", "--unit", "360202-SCJ",
                         "--inspector", "JDZ-I013", "--inspector", "JDZ-I020", "--reason", "sick")
    assert code == 2
    assert err == ("spotcheck dispatch: refused: the assignment breaks the draw's rules: "
                   "JDZ-I020 does not hold the role inspector [role]\n")


def test_a_script_passes_its_token_in_the_environment(shell):
    token = shell.login("JDZ-I022", "--print-token").strip()
    assert not (shell.config / "spotcheck" / "token").exists()
    shell.monkeypatch.setenv("SPOTCHECK_TOKEN", token)
    assert shell.actor().id == "JDZ-I022" and shell.actor().roles == {"supervisor"}


def test_a_disabled_account_or_an_inactive_inspector_is_cut_off_at_the_next_command(shell):
    shell.login("ops.audit")
    assert shell.actor().roles == {"auditor"}
    identity.disable_user(shell.db.engine, ADMIN, "ops.audit")
    try:
        with pytest.raises(identity.TokenRejected, match="may do nothing now"):
            shell.actor()
    finally:
        identity.enable_user(shell.db.engine, ADMIN, "ops.audit")


def test_the_api_and_the_cli_do_not_take_each_others_tokens(shell):
    settings = config.load()
    api_token, _ = identity.issue_access_token("JDZ-I013", identity.LocalTokens(config.token_secret(settings.data_dir)))
    shell.monkeypatch.setenv("SPOTCHECK_TOKEN", api_token)
    with pytest.raises(identity.TokenRejected) as rejected:
        shell.actor()
    assert rejected.value.rule == "issuer"


def test_a_wrong_password_says_no_more_than_that(shell):
    for user in ("JDZ-I013", "nobody"):
        code, _, err = shell("login", user, "--password-stdin", "--json", stdin="wrong password, long enough\n")
        assert (code, err) == (2, "spotcheck login: unknown user or wrong password\n")
    assert not (shell.config / "spotcheck" / "token").exists()
    assert json.loads(shell.login("JDZ-I013", "--json"))["roles"] == ["inspector"]


def test_the_demo_makes_its_people_users_who_log_in_with_the_directorys_roles(db):
    from cli.demo import PEOPLE_PASSWORD, create_people
    with db.engine.connect() as c:
        everyone = directory.everyone(c, datetime.now(timezone.utc))
    assert len(everyone) == 66 and create_people(db.engine) == 66 - 2  # JDZ-I013 and JDZ-I022 were users already
    assert create_people(db.engine) == 0
    reviewer = identity.authenticate(db.engine, "JDZ-I020", PEOPLE_PASSWORD)
    assert (reviewer.roles, reviewer.unit) == ({"reviewer"}, "360202-SCJ")
