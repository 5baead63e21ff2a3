"""docker-compose.yml: it validates, it has the services, and its search attributes are the code's.

`docker-compose config` (or `docker compose config`) parses and interpolates the file without a
Docker engine; the tests that need it skip when neither command is installed
(`apt-get install docker-compose` provides one). The search-attribute list is also compared with
the code's list (workflows/common.py) straight from the file text, with no command at all.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

SERVICES = {
    "postgresql", "temporal-schema", "temporal", "temporal-init", "temporal-ui",
    "worker", "worker-heavy",
}
# What the operator contract and the architecture fix; the code's list must agree (below).
SEARCH_ATTRIBUTES = {
    "SpotcheckStage": "Keyword",
    "SpotcheckPlanYear": "Int",
    "SpotcheckTaskId": "Keyword",
    "SpotcheckUnit": "Keyword",
    "SpotcheckRegion": "Keyword",
    "SpotcheckOverdue": "Bool",
}


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True,
                               timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.fixture(scope="module")
def compose() -> list[str]:
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker-compose` nor `docker compose` is installed; "
                    "install one (e.g. apt-get install docker-compose) to validate docker-compose.yml")
    return command


def _run(command: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*command, "-f", str(COMPOSE_FILE), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _pairs(text: str) -> dict[str, str]:
    pairs = {}
    for token in text.split():
        name, sep, kind = token.partition("=")
        assert sep and name and kind, f"bad search attribute entry {token!r}"
        assert name not in pairs, f"search attribute {name} listed twice"
        pairs[name] = kind
    return pairs


def _file_search_attributes() -> dict[str, str]:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    match = re.search(r"^x-spotcheck-search-attributes: &\S+ >-\n((?:[ ]{2}\S.*\n)+)", text, re.M)
    assert match, "docker-compose.yml lost its x-spotcheck-search-attributes block"
    return _pairs(match.group(1))


def test_compose_config_is_valid(compose):
    result = _run(compose, "config", "-q")
    assert result.returncode == 0, f"`{' '.join(compose)} config -q` failed:\n{result.stderr}"


def test_compose_config_has_services_and_search_attributes(compose):
    result = _run(compose, "config")
    assert result.returncode == 0, result.stderr
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is not None:
        config = yaml.safe_load(result.stdout)
        services = config["services"]
        assert SERVICES <= set(services), f"missing services: {SERVICES - set(services)}"
        registered = _pairs(services["temporal-init"]["environment"]["SPOTCHECK_SEARCH_ATTRIBUTES"])
        assert registered == SEARCH_ATTRIBUTES
        assert services["worker"]["command"] == ["spotcheck", "worker", "--queue", "spotcheck"]
        assert services["worker-heavy"]["command"] == [
            "spotcheck", "worker", "--queue", "spotcheck-heavy"]
        for name in ("worker", "worker-heavy"):
            env = services[name]["environment"]
            assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
            assert env["TEMPORAL_NAMESPACE"] == "default"
            assert env["DATABASE_URL"].startswith("postgresql+psycopg2://spotcheck:")
            assert env["DATABASE_URL"].endswith("@postgresql:5432/spotcheck")
    else:  # no PyYAML: the rendered text still names every service and attribute
        text = result.stdout
        for service in SERVICES:
            assert re.search(rf"^  {re.escape(service)}:\s*$", text, re.M), f"service {service} missing"
        for name, kind in SEARCH_ATTRIBUTES.items():
            assert f"{name}={kind}" in text, f"search attribute {name}={kind} missing"
        assert "spotcheck-heavy" in text and "TEMPORAL_ADDRESS: temporal:7233" in text


def test_compose_search_attributes_match_the_code():
    """One list: compose's must equal workflows/common.py SEARCH_ATTRIBUTES (name and type)."""
    in_file = _file_search_attributes()
    assert in_file == SEARCH_ATTRIBUTES
    try:
        from workflows.common import SEARCH_ATTRIBUTES as CODE_KEYS
    except ImportError as exc:  # the code's list lives elsewhere now: say so, don't hide it
        pytest.skip(f"workflows.common.SEARCH_ATTRIBUTES not importable: {exc}")
    type_names = {
        "KEYWORD": "Keyword", "INT": "Int", "BOOL": "Bool", "DOUBLE": "Double",
        "DATETIME": "Datetime", "TEXT": "Text", "KEYWORD_LIST": "KeywordList",
    }
    in_code = {key.name: type_names[key.indexed_value_type.name] for key in CODE_KEYS}
    assert in_file == in_code, "docker-compose.yml and workflows/common.py disagree"


def test_compose_mounts_exist():
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for script in ("temporal-schema.sh", "temporal-init.sh", "postgres-init.sh"):
        assert f"/deploy/{script}" in text or f"./deploy/{script}" in text, script
        assert (ROOT / "deploy" / script).is_file(), f"deploy/{script} missing"
    assert (ROOT / "deploy" / "dynamicconfig" / "production-sql.yaml").is_file()
    assert (ROOT / "Dockerfile").is_file()


TEMPORAL_ACCESS = ("SPOTCHECK_TEMPORAL_TLS_CA", "SPOTCHECK_TEMPORAL_TLS_CERT", "SPOTCHECK_TEMPORAL_TLS_KEY",
                   "SPOTCHECK_TEMPORAL_TLS_SERVER_NAME", "SPOTCHECK_TEMPORAL_API_KEY")


def _service_blocks(rendered: str) -> dict[str, str]:
    """`config`'s rendered text, each service's lines (no YAML parser needed)."""
    services = re.search(r"^services:\n((?:[ ].*\n)+)", rendered, re.M).group(1)
    parts = re.split(r"^  (\S+):\n", services, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_compose_shows_the_secured_shape(compose, monkeypatch):
    """With the `.env` of the file's header, the workers reach the server over mTLS, the server demands
    client certificates, and the codec server has its token; the names are the ones runtime/config.py reads."""
    secured = {"TEMPORAL_SERVER_TLS_CA": "/etc/spotcheck/tls/ca.pem",
               "TEMPORAL_SERVER_TLS_CERT": "/etc/spotcheck/tls/server.pem",
               "TEMPORAL_SERVER_TLS_KEY": "/etc/spotcheck/tls/server.key",
               "TEMPORAL_TLS_REQUIRE_CLIENT_AUTH": "true",
               "SPOTCHECK_TEMPORAL_TLS_CA": "/etc/spotcheck/tls/ca.pem",
               "SPOTCHECK_TEMPORAL_TLS_CERT": "/etc/spotcheck/tls/client.pem",
               "SPOTCHECK_TEMPORAL_TLS_KEY": "/etc/spotcheck/tls/client.key",
               "SPOTCHECK_TEMPORAL_TLS_SERVER_NAME": "temporal", "SPOTCHECK_CODEC_TOKEN": "t" * 64}
    for name, value in secured.items():
        monkeypatch.setenv(name, value)
    result = _run(compose, "config")
    assert result.returncode == 0, result.stderr
    services = _service_blocks(result.stdout)

    def has(service: str, name: str, value: str) -> bool:
        return re.search(rf"^\s+{name}: [\"']?{re.escape(value)}[\"']?$", services[service], re.M) is not None
    for name in ("worker", "worker-heavy"):
        assert all(has(name, key, secured[key]) for key in TEMPORAL_ACCESS[:4]), services[name]
        assert "/deploy/tls:/etc/spotcheck/tls:ro" in services[name]
    assert has("temporal", "TEMPORAL_TLS_REQUIRE_CLIENT_AUTH", "true")
    assert has("temporal", "TEMPORAL_TLS_FRONTEND_CERT", "/etc/spotcheck/tls/server.pem")
    assert has("temporal", "TEMPORAL_TLS_CLIENT1_CA_CERT", "/etc/spotcheck/tls/ca.pem")
    assert has("temporal-ui", "TEMPORAL_TLS_CERT", "/etc/spotcheck/tls/client.pem")
    assert has("codec-server", "SPOTCHECK_CODEC_TOKEN", "t" * 64)
    source = (ROOT / "runtime" / "config.py").read_text()
    assert all(f'"{name}"' in source for name in (*TEMPORAL_ACCESS, "SPOTCHECK_CODEC_TOKEN"))
