"""Workers and clients reach a secured cluster: TLS / mTLS files, the server name and an API key from the
environment, handed to Client.connect; nothing set is plain gRPC, as the embedded server speaks."""
from __future__ import annotations

import pytest
from temporalio.client import Client
from temporalio.service import TLSConfig

from runtime import client as runtime_client
from runtime import config
from runtime.config import TemporalAccess

ENV = ("SPOTCHECK_TEMPORAL_TLS_CA", "SPOTCHECK_TEMPORAL_TLS_CERT", "SPOTCHECK_TEMPORAL_TLS_KEY",
       "SPOTCHECK_TEMPORAL_TLS_SERVER_NAME", "SPOTCHECK_TEMPORAL_API_KEY")


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    for name, text in (("ca.pem", "CA"), ("worker.pem", "CERT"), ("worker.key", "KEY")):
        (tmp_path / name).write_text(text)
    return monkeypatch


@pytest.fixture
def connected(monkeypatch):
    """What connect() hands Client.connect."""
    seen = {}

    async def fake(target, **kwargs):
        seen.update(kwargs, target=target)
    monkeypatch.setattr(Client, "connect", fake)
    return seen


async def test_nothing_set_is_plain_grpc(env, tmp_path, connected):
    settings = config.load(tmp_path)
    assert settings.temporal == TemporalAccess() and runtime_client.tls_config(settings.temporal) is False
    await runtime_client.connect(settings)
    assert connected["tls"] is False and connected["api_key"] is None


async def test_mtls_files_and_the_server_name_reach_the_client(env, tmp_path, connected):
    env.setenv("SPOTCHECK_TEMPORAL_TLS_CA", str(tmp_path / "ca.pem"))
    env.setenv("SPOTCHECK_TEMPORAL_TLS_CERT", str(tmp_path / "worker.pem"))
    env.setenv("SPOTCHECK_TEMPORAL_TLS_KEY", str(tmp_path / "worker.key"))
    env.setenv("SPOTCHECK_TEMPORAL_TLS_SERVER_NAME", "temporal.scj.internal")
    await runtime_client.connect(config.load(tmp_path))
    assert connected["tls"] == TLSConfig(server_root_ca_cert=b"CA", client_cert=b"CERT", client_private_key=b"KEY",
                                         domain="temporal.scj.internal")


async def test_an_api_key_goes_over_tls_with_the_systems_roots_and_stays_out_of_the_repr(env, tmp_path, connected):
    env.setenv("SPOTCHECK_TEMPORAL_API_KEY", "sk-secret-value")
    settings = config.load(tmp_path)
    assert "sk-secret-value" not in repr(settings)
    await runtime_client.connect(settings)
    assert connected["api_key"] == "sk-secret-value" and connected["tls"] == TLSConfig()


def test_a_client_certificate_needs_its_key(env, tmp_path):
    env.setenv("SPOTCHECK_TEMPORAL_TLS_CERT", str(tmp_path / "worker.pem"))
    with pytest.raises(ValueError, match="go together"):
        config.load(tmp_path)


async def test_a_missing_file_is_named_at_connect(env, tmp_path, connected):
    env.setenv("SPOTCHECK_TEMPORAL_TLS_CA", str(tmp_path / "nowhere.pem"))
    with pytest.raises(FileNotFoundError) as missing:
        await runtime_client.connect(config.load(tmp_path))
    assert missing.value.filename == str(tmp_path / "nowhere.pem")
