"""Payload encryption (runtime/codec.py) and its codec server (runtime/codec_server.py).

The codec alone: round trip, key rotation, plain payloads passing through, a clear error for an
unknown key id. Then the whole chain on the time-skipping server with a client whose converter
encrypts: the raw histories of the plan, the task and the targets hold none of the drawn entities'
names, team inspector ids or the task code (任务编号) in any payload or string field. The same scan
of an unencrypted run is the control: there the inspector ids and the task code are found (the
entity names never reach a history at all: activities look them up by USCC), so the scan does see
what encryption hides.
"""
from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import pytest_asyncio
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from sqlalchemy import select
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.handoff import JsonlReceiver
from db import schema
from domain.messages.plan import PlanOutcome, PlanRun
from domain.messages.target import CheckRecord, ResultEntry, Review
from domain.workdays import Deadlines, calendar_from_env
from runtime import config
from runtime.client import WORKFLOWS, build_worker
from runtime.codec import (ENCODING, KEY_ID, AesGcmCodec, CodecKeyError, converter_with, data_converter,
                           decrypt_in_place, is_encrypted, parse_keys, payloads_in)
from runtime.codec_server import CodecServer
from service.errors import Refused
from service.targets import send, status as target_status
from service.imports import import_examples
from store.plans import load_plan
from read.timeline import timeline
from tests.conftest import venv_binary
from tests.workflows.support import (
    ALL_PASS,
    people,
    plan_file,
    server_today,
    start_plan,
    terminate_chain,
    wait_for,
    waiting_targets,
)
from workflows.common import HEAVY_TASK_QUEUE, SEARCH_ATTRIBUTES, target_workflow_id, task_workflow_id

OLD_KEY, NEW_KEY = os.urandom(32), os.urandom(32)
CORPUS = Path(__file__).resolve().parent.parent / "histories"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def plain(value) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([value])[0]


# --- the codec -------------------------------------------------------------------------------------
async def test_round_trip_encrypts_the_whole_payload():
    codec = AesGcmCodec({"k1": OLD_KEY})
    original = plain(CheckRecord(inspectors=["JDZ-I001", "JDZ-I002"], method="document"))
    [encrypted] = await codec.encode([original])
    assert encrypted.metadata["encoding"] == ENCODING == b"binary/encrypted"
    assert encrypted.metadata[KEY_ID] == b"k1"
    assert set(encrypted.metadata) == {"encoding", KEY_ID}  # the inner encoding (json/plain) is hidden too
    assert b"JDZ-I001" not in encrypted.SerializeToString()
    assert len(encrypted.data) == 12 + len(original.SerializeToString()) + 16  # nonce + ciphertext + tag
    [again] = await codec.encode([original])
    assert again.data[:12] != encrypted.data[:12] and again.data != encrypted.data  # a fresh nonce each time
    assert await codec.decode([encrypted, again]) == [original, original]


async def test_rotation_new_key_encrypts_old_key_id_still_decrypts():
    old = AesGcmCodec.from_spec(f"k1:{b64(OLD_KEY)}")
    rotated = AesGcmCodec.from_spec(f"k2:{b64(NEW_KEY)}, k1:{b64(OLD_KEY)}")
    assert rotated.encrypt_key_id == "k2" and rotated.key_ids == ["k2", "k1"]
    original = plain({"uscc": "91360200104133633W", "name": "景德镇市乐原装饰设计有限责任公司"})
    [written_before] = await old.encode([original])
    [written_after] = await rotated.encode([original])
    assert written_after.metadata[KEY_ID] == b"k2"
    assert await rotated.decode([written_before, written_after]) == [original, original]
    with pytest.raises(CodecKeyError, match="'k2'"):  # a worker not yet given the new key says which one
        await old.decode([written_after])


async def test_plain_payloads_pass_through_decode():
    codec = AesGcmCodec({"k1": OLD_KEY})
    payloads = [plain(PlanRun(plan_code="OLD-1")), plain(None), plain(b"\x00raw"), plain("文本")]
    assert await codec.decode(payloads) == payloads
    [encrypted] = await codec.encode([payloads[0]])
    assert await codec.decode([payloads[1], encrypted, payloads[3]]) == [payloads[1], payloads[0], payloads[3]]


async def test_unknown_key_id_is_a_clear_error():
    [encrypted] = await AesGcmCodec({"retired-2025": OLD_KEY}).encode([plain("x")])
    codec = AesGcmCodec({"k2": NEW_KEY, "k1": OLD_KEY})
    with pytest.raises(CodecKeyError) as caught:
        await codec.decode([encrypted])
    message = str(caught.value)
    assert "'retired-2025'" in message and "not configured" in message and "'k2', 'k1'" in message
    assert b64(OLD_KEY) not in message and b64(NEW_KEY) not in message


async def test_wrong_key_or_altered_data_fails_clearly():
    [encrypted] = await AesGcmCodec({"k1": OLD_KEY}).encode([plain("x")])
    with pytest.raises(CodecKeyError, match="'k1' does not decrypt"):
        await AesGcmCodec({"k1": NEW_KEY}).decode([encrypted])
    altered = Payload()
    altered.CopyFrom(encrypted)
    altered.data = encrypted.data[:-1] + bytes([encrypted.data[-1] ^ 1])
    with pytest.raises(CodecKeyError, match="does not decrypt"):
        await AesGcmCodec({"k1": OLD_KEY}).decode([altered])
    no_id = Payload(metadata={"encoding": ENCODING}, data=encrypted.data)
    with pytest.raises(CodecKeyError, match=KEY_ID):
        await AesGcmCodec({"k1": OLD_KEY}).decode([no_id])


@pytest.mark.parametrize("spec, problem", [
    ("", "names no key"),
    ("k1", "expected id:base64key"),
    (":" + b64(OLD_KEY), "expected id:base64key"),
    ("bad id:" + b64(OLD_KEY), "expected id:base64key"),
    ("k1:not base64!", "not valid base64"),
    ("k1:" + b64(b"short"), "5 bytes"),
    (f"k1:{b64(OLD_KEY)},k1:{b64(NEW_KEY)}", "listed twice"),
])
def test_malformed_keys_are_refused_without_echoing_them(spec, problem):
    with pytest.raises(CodecKeyError, match=problem) as caught:
        parse_keys(spec)
    assert b64(OLD_KEY) not in str(caught.value) and b64(NEW_KEY) not in str(caught.value)


def test_keys_accept_urlsafe_base64_and_every_aes_size():
    keys = parse_keys(f"a:{base64.urlsafe_b64encode(NEW_KEY).decode()}, b:{b64(OLD_KEY[:16])}, c:{b64(OLD_KEY[:24])}")
    assert keys == {"a": NEW_KEY, "b": OLD_KEY[:16], "c": OLD_KEY[:24]}


def test_settings_choose_the_converter_and_never_show_the_keys(monkeypatch):
    monkeypatch.delenv("SPOTCHECK_CODEC_KEYS", raising=False)
    settings = config.load()
    assert settings.codec_keys is None
    assert data_converter(settings) is pydantic_data_converter
    monkeypatch.setenv("SPOTCHECK_CODEC_KEYS", f"k2:{b64(NEW_KEY)},k1:{b64(OLD_KEY)}")
    settings = config.load()
    converter = data_converter(settings)
    assert isinstance(converter.payload_codec, AesGcmCodec) and converter.payload_codec.encrypt_key_id == "k2"
    assert converter.failure_converter_class is DefaultFailureConverterWithEncodedAttributes
    assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class
    assert b64(NEW_KEY) not in repr(settings)
    monkeypatch.setenv("SPOTCHECK_CODEC_KEYS", "k1:???")
    with pytest.raises(CodecKeyError):
        data_converter(config.load())


async def test_converter_round_trips_models_and_hides_failure_messages():
    converter = converter_with(AesGcmCodec({"k1": OLD_KEY}))
    record = ResultEntry(inspector="JDZ-I001", category="no_issue", findings={"GS-001-1": "pass"})
    payloads = await converter.encode([record])
    assert all(is_encrypted(p) for p in payloads)
    assert await converter.decode(payloads, [ResultEntry]) == [record]
    failure = Failure()
    await converter.encode_failure(ApplicationError("景德镇市乐原装饰设计有限责任公司 refused", type="Refused"), failure)
    assert "景德镇".encode() not in failure.SerializeToString()
    assert failure.message == "Encoded failure" and is_encrypted(failure.encoded_attributes)
    error = await converter.decode_failure(failure)
    assert "景德镇市乐原装饰设计有限责任公司 refused" in str(error)


async def test_committed_plain_corpus_replays_with_the_encrypting_converter():
    """Switching encryption on keeps every history written before it readable (and replayable)."""
    replayer = Replayer(workflows=WORKFLOWS, data_converter=converter_with(AesGcmCodec({"k1": OLD_KEY})))
    paths = sorted(CORPUS.glob("*/*.json"))
    assert paths
    for path in paths:
        await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, json.loads(path.read_text())))


# --- the codec server ------------------------------------------------------------------------------
CODEC_TOKEN = "codec-token-" + "7" * 32
BEARER = {"Authorization": f"Bearer {CODEC_TOKEN}"}


def post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict, dict]:
    """A POST with the codec server's token unless `headers` says otherwise."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **BEARER, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"{}")


def test_codec_server_encode_then_decode_round_trip():
    codec = AesGcmCodec({"k2": NEW_KEY, "k1": OLD_KEY})
    originals = [plain(CheckRecord(inspectors=["JDZ-I001", "JDZ-I002"], method="document")), plain("景德镇")]
    body = json_format.MessageToJson(Payloads(payloads=originals)).encode()
    with CodecServer(codec, CODEC_TOKEN, port=0, cors_origins=["http://127.0.0.1:8233"]) as server:
        status, _, encoded = post(f"{server.url}/encode", body)
        assert status == 200
        encoded_payloads = json_format.ParseDict(encoded, Payloads()).payloads
        assert [p.metadata[KEY_ID] for p in encoded_payloads] == [b"k2", b"k2"]
        assert b"JDZ-I001" not in Payloads(payloads=encoded_payloads).SerializeToString()

        # the Web UI: a preflight from its origin, then /decode with its namespace header
        origin = {"Origin": "http://127.0.0.1:8233"}
        preflight = urllib.request.Request(f"{server.url}/decode", method="OPTIONS", headers={
            **origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-namespace"})
        with urllib.request.urlopen(preflight, timeout=10) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8233"
            assert "x-namespace" in response.headers["Access-Control-Allow-Headers"]
        status, headers, decoded = post(f"{server.url}/decode", json.dumps(encoded).encode(),
                                        {**origin, "X-Namespace": "default"})
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8233"
        assert list(json_format.ParseDict(decoded, Payloads()).payloads) == originals

        # the CLI's `{namespace}` endpoint; a plain payload passes; an old key id still decrypts
        [old] = AesGcmCodec({"k1": OLD_KEY}).encode_sync([originals[1]])
        mixed = json_format.MessageToJson(Payloads(payloads=[old, originals[0]])).encode()
        status, _, decoded = post(f"{server.url}/default/decode", mixed)
        assert status == 200 and list(json_format.ParseDict(decoded, Payloads()).payloads) == [originals[1], originals[0]]

        # refusals: unknown key id, another origin, not proto JSON
        [unknown] = AesGcmCodec({"gone": OLD_KEY}).encode_sync([originals[1]])
        status, _, error = post(f"{server.url}/decode", json_format.MessageToJson(Payloads(payloads=[unknown])).encode())
        assert status == 400 and "'gone'" in error["error"]
        status, headers, _ = post(f"{server.url}/decode", body, {"Origin": "http://elsewhere.test"})
        assert status == 403 and "Access-Control-Allow-Origin" not in headers
        status, _, error = post(f"{server.url}/decode", b"not json")
        assert status == 400 and "payloads" in error["error"]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {CODEC_TOKEN}",
                                           f"Bearer {CODEC_TOKEN}x", "Bearer ", "Bearer \u00e9t\u00e9"])
def test_the_codec_server_decrypts_for_the_token_only(authorization):
    codec = AesGcmCodec({"k2": NEW_KEY})
    body = json_format.MessageToJson(Payloads(payloads=codec.encode_sync([plain("景德镇")]))).encode()
    ui = "http://127.0.0.1:8233"
    with CodecServer(codec, CODEC_TOKEN, port=0, cors_origins=[ui]) as server:
        status, headers, error = post(f"{server.url}/decode", body, {"Origin": ui, "Authorization": authorization or ""})
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert headers["Access-Control-Allow-Origin"] == ui  # the Web UI can read why
        assert "景德镇" not in json.dumps(error, ensure_ascii=False)
        assert post(f"{server.url}/decode", body, {"Origin": ui})[0] == 200


@pytest.mark.parametrize("token,origins,problem", [
    (None, ["http://127.0.0.1:8233"], "SPOTCHECK_CODEC_TOKEN"),
    ("short", ["http://127.0.0.1:8233"], "at least 32"),
    ("x" * 31 + "\n", ["http://127.0.0.1:8233"], "printable"),
    (CODEC_TOKEN, ["*"], "no wildcard"),
    (CODEC_TOKEN, [], "no wildcard"),
])
def test_the_codec_server_needs_a_token_and_a_named_origin(token, origins, problem):
    with pytest.raises(ValueError, match=problem):
        CodecServer(AesGcmCodec({"k2": NEW_KEY}), token, port=0, cors_origins=origins)


# --- the whole chain, encrypted --------------------------------------------------------------------
# Populations of their own (tests/workflows/support.py: the frequency cap excludes an entity drawn by
# an earlier test of the session): enterprises of 360202 in these industries, drawn by no other test.
ENC_INDUSTRY, PLAIN_INDUSTRY = "G54", "H62"


@pytest.fixture(scope="module")
def directories(pg_engine):
    import_examples(pg_engine, now=datetime.now(timezone.utc) - timedelta(days=1))
    return pg_engine


@pytest_asyncio.fixture
async def own_env():
    """A time-skipping server of this test's own, not the module's `ts_env`: once a chain has run to
    completion on a server, `env.sleep` there no longer skips time (it waits in real time until its
    RPC times out), and this module runs two chains, each needing skips before its draw."""
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=venv_binary("temporal-test-server", "TEMPORAL_TEST_SERVER_PATH"),
    ) as env:
        await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={k.name: IndexedValueType.ValueType(k.indexed_value_type) for k in SEARCH_ATTRIBUTES},
        ))
        yield env


async def encrypting_client(env, codec: AesGcmCodec) -> Client:
    """A client of its own on the same test server, with the encrypting converter (and the env's
    interceptors, so that awaiting a result skips time as with `env.client`)."""
    base = env.client
    return await Client.connect(base.service_client.config.target_host, namespace=base.namespace,
                                data_converter=converter_with(codec), interceptors=base.config()["interceptors"])


async def run_chain(env, client: Client, engine, tmp_path, prefix: str, industry: str) -> dict:
    """Plan → task → draw → dispatch → check, result, review of every target → published → closed,
    with `client` (and workers on it) for everything, as tests/workflows/test_chain.py does."""
    code = f"{prefix}-{uuid.uuid4().hex[:6]}"
    plan, created = load_plan(engine, plan_file(await server_today(env), code, industry=industry), "plan.json")
    assert created
    task_id = plan.tasks[0].task_id
    queue, executor = f"q-{uuid.uuid4()}", ThreadPoolExecutor(max_workers=8)
    deadlines, receiver = Deadlines(calendar_from_env()), JsonlReceiver(tmp_path / f"{prefix}-outbox.jsonl")
    main = build_worker(client, queue, engine, deadlines, receiver, executor)
    heavy = build_worker(client, HEAVY_TASK_QUEUE, engine, deadlines, receiver, executor)
    try:
        async with main, heavy:
            handle = await start_plan(client, code, queue)
            usccs = await wait_for(lambda: waiting_targets(client, engine, task_id), env=env)  # past the redraw window
            reviewer = people(engine, "reviewer")[0]
            inspectors: set[str] = set()
            for n, uscc in enumerate(usccs):
                team = (await target_status(client, task_id, uscc)).teams[0].inspectors
                inspectors.update(team)
                if n == 0:  # a refusal's message comes back readable (failure attributes are encrypted)
                    with pytest.raises(Refused, match="at least two"):
                        await send(client, task_id, uscc, "check", CheckRecord(inspectors=team[:1], method="document"))
                await send(client, task_id, uscc, "check", CheckRecord(inspectors=team, method="document"))
                await send(client, task_id, uscc, "result", ResultEntry(
                    inspector=team[0], category=["no_issue", "pending_investigation"][n % 2], findings=ALL_PASS))
                await send(client, task_id, uscc, "review", Review(reviewer=reviewer, approve=True))
            outcome = await handle.result()  # time skips while it waits (the env's interceptor)
            assert isinstance(outcome, PlanOutcome) and outcome.tasks_closed == 1
            steps = await timeline(client, task_id, engine=engine)  # `spotcheck task history` decodes through the client
            assert {e["actor"] for e in steps} & inspectors, steps  # actors are read from the payloads
            histories = {
                "plan": await handle.fetch_history(),
                "task": await client.get_workflow_handle(task_workflow_id(task_id)).fetch_history(),
                **{f"target {u}": await client.get_workflow_handle(target_workflow_id(task_id, u)).fetch_history()
                   for u in usccs},
            }
    finally:
        await terminate_chain(client, engine, code, task_id)
    with engine.connect() as c:
        names = c.execute(select(schema.entities.c.name).where(schema.entities.c.uscc.in_(usccs))).scalars().all()
    assert names and inspectors
    return {"histories": histories, "markers": {
        "entity name": sorted(set(names)),
        "inspector id": sorted(inspectors),
        "task code": [plan.tasks[0].task_code],
    }}


def scan(message: Message, path: tuple[str, ...] = ()):
    """(path, item) for every Payload message and every string or bytes field, anywhere in a protobuf."""
    if message.DESCRIPTOR.full_name == Payload.DESCRIPTOR.full_name:
        yield path, message
        return
    for fd, value in message.ListFields():
        here = (*path, fd.name)
        if fd.type == FieldDescriptor.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry:
            for key, item in value.items():
                yield here, str(key).encode()
                if isinstance(item, Message):
                    yield from scan(item, (*here, str(key)))
                else:
                    yield here, item if isinstance(item, bytes) else str(item).encode()
            continue
        for item in (value if fd.is_repeated else (value,)):
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                yield from scan(item, here)
            elif fd.type == FieldDescriptor.TYPE_STRING:
                yield here, item.encode()
            elif fd.type == FieldDescriptor.TYPE_BYTES:
                yield here, item


def needles(text: str) -> list[bytes]:
    """The text as UTF-8, and as JSON with \\u escapes, the two ways it could sit in a payload."""
    return sorted({text.encode(), json.dumps(text)[1:-1].encode()})


def find_markers(histories: dict[str, WorkflowHistory], markers: dict[str, list[str]]) -> dict[str, set[str]]:
    """Which marker strings appear in any payload's metadata or data, or any string field, of any history."""
    found: dict[str, set[str]] = {kind: set() for kind in markers}
    for history in histories.values():
        for event in history.events:
            chunks = []
            for _, item in scan(event):
                if isinstance(item, Payload):
                    chunks.append(item.data)
                    chunks.extend(k.encode() + b"=" + v for k, v in item.metadata.items())
                else:
                    chunks.append(item)
            blob = b"\x00".join(chunks)
            for kind, texts in markers.items():
                found[kind].update(t for t in texts if any(n in blob for n in needles(t)))
            # belt and braces: the event's whole wire form
            wire = event.SerializeToString()
            for kind, texts in markers.items():
                found[kind].update(t for t in texts if any(n in wire for n in needles(t)))
    return found


@pytest.mark.postgres
async def test_chain_histories_hold_no_entity_data_when_encrypted(own_env, directories, tmp_path):
    codec = AesGcmCodec({"enc-test-2": NEW_KEY, "enc-test-1": OLD_KEY})
    client = await encrypting_client(own_env, codec)
    encrypted = await run_chain(own_env, client, directories, tmp_path, "ENC", ENC_INDUSTRY)
    histories = encrypted["histories"]

    # Every payload is encrypted with the first key, except what the server or the SDK core write
    # themselves: search attributes (Temporal indexes them) and `workflow.patched` markers (the patch id).
    where_encrypted, in_clear = set(), []
    for name, history in histories.items():
        for event in history.events:
            for path, item in scan(event):
                if not isinstance(item, Payload):
                    continue
                if is_encrypted(item):
                    assert item.metadata[KEY_ID] == b"enc-test-2"
                    where_encrypted.add(".".join(path))
                elif "search_attributes" not in path and "patch-data" not in path:
                    in_clear.append((name, event.event_id, ".".join(path)))
    assert not in_clear, f"payloads stored in clear: {in_clear[:10]}"
    assert {p for p in where_encrypted if "user_metadata.summary" in p}, "summaries are not encrypted"
    assert {p for p in where_encrypted if p.startswith("workflow_execution_update_accepted_event_attributes")}
    assert {p for p in where_encrypted if p.startswith("activity_task_completed_event_attributes.result")}
    assert sum(1 for h in histories.values() for e in h.events for p in payloads_in(e) if is_encrypted(p)) > 20

    found = find_markers(histories, encrypted["markers"])
    assert found == {kind: set() for kind in encrypted["markers"]}, f"in the encrypted histories: {found}"

    # The encrypted histories replay with the keys, and only with them.
    replayer = Replayer(workflows=WORKFLOWS, data_converter=client.data_converter)
    for history in histories.values():
        await replayer.replay_workflow(history)
    with pytest.raises(RuntimeError, match="Failed decoding arguments"):
        await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter).replay_workflow(
            histories["plan"])

    # decrypt_in_place turns the fetched histories into plain ones (what the replay corpus keeps),
    # which replay without keys and show the markers: the ciphertext did hold them.
    decrypted = {}
    for name, history in histories.items():
        events = [type(e)() for e in history.events]
        for copy, event in zip(events, history.events):
            copy.CopyFrom(event)
            decrypt_in_place(copy, codec)
        decrypted[name] = WorkflowHistory(history.workflow_id, events)
        assert not any(is_encrypted(p) for e in events for p in payloads_in(e))
        await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter).replay_workflow(decrypted[name])
    found = find_markers(decrypted, encrypted["markers"])
    assert found["inspector id"] == set(encrypted["markers"]["inspector id"]), found
    assert found["task code"] == set(encrypted["markers"]["task code"]), found


@pytest.mark.postgres
async def test_control_unencrypted_chain_histories_show_the_markers(own_env, directories, tmp_path):
    """The same scan on an unencrypted run finds what encryption hid: so the scan is not blind."""
    run = await run_chain(own_env, own_env.client, directories, tmp_path, "PLAIN", PLAIN_INDUSTRY)
    found = find_markers(run["histories"], run["markers"])
    print("markers found in the unencrypted histories:", {k: sorted(v) for k, v in found.items()})
    assert found["inspector id"] == set(run["markers"]["inspector id"]), found
    assert found["task code"] == set(run["markers"]["task code"]), found
    # Entity names are looked up by USCC inside the activities and, today, never reach a history even
    # unencrypted (found["entity name"] is empty): should one ever pass through a workflow, the
    # encrypted test above already scans for it.
