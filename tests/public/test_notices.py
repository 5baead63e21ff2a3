"""The notices: the signed dispatch token (domain.notices) and the PDFs (read.notices, `spotcheck notice`)."""
from __future__ import annotations

import io
import json
from datetime import date

import pypdf
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from cli import main
from domain import notices
from tests.public.year import INSPECTORS, LEGAL_BASIS, T1, T2, UNIT, UNIT_NAMES, populate

TEAM = ["JDZ-I001", "JDZ-I002"]
USCC = "91360202MA0000001X"


def published(*keys: Ed25519PrivateKey) -> dict[str, bytes]:
    raws = [notices.raw_public_key(k.public_key()) for k in keys]
    return {notices.key_id(raw): raw for raw in raws}


def token(key, team=TEAM, valid_until=date(2025, 6, 30)) -> str:
    return notices.sign(task_id=T1, uscc=USCC, team=team, valid_until=valid_until, key=key)


def reforged(original: str, **changes) -> str:
    """The token with payload fields changed and the original signature kept."""
    prefix, body, signature = original.split(".")
    payload = json.loads(notices._unb64url(body)) | changes
    return f"{prefix}.{notices.b64url(notices.canonical(payload))}.{signature}"


def test_a_signed_token_states_the_dispatch():
    key = Ed25519PrivateKey.generate()
    stated = notices.verify(token(key), published(key))
    assert stated == notices.Dispatch(task_id=T1, uscc=USCC, team=tuple(TEAM), valid_until=date(2025, 6, 30),
                                      kid=next(iter(published(key))))


@pytest.mark.parametrize("change", [
    {"team": ["JDZ-I001", "JDZ-I009"]}, {"team": ["JDZ-I001"]}, {"uscc": "91360202MA0000000T"},
    {"task_id": "JDZ-2025-0002"}, {"valid_until": "2026-06-30"}])
def test_a_changed_payload_is_not_genuine(change):
    key = Ed25519PrivateKey.generate()
    with pytest.raises(notices.NotGenuine, match="signature"):
        notices.verify(reforged(token(key), **change), published(key))


def test_a_key_not_published_or_another_keys_id_is_not_genuine():
    key, impostor = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    with pytest.raises(notices.NotGenuine, match="not a published notice key"):
        notices.verify(token(impostor), published(key))
    # Signed by the impostor but labelled with the published key's id: the signature fails.
    labelled = notices.sign(task_id=T1, uscc=USCC, team=TEAM, valid_until=date(2025, 6, 30), key=impostor)
    forged = reforged(labelled, kid=next(iter(published(key))))
    with pytest.raises(notices.NotGenuine, match="signature"):
        notices.verify(forged, published(key))


def test_a_rotated_key_still_checks_its_notices():
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    keys = published(old, new)
    assert len(keys) == 2
    assert notices.verify(token(old), keys).kid != notices.verify(token(new), keys).kid


@pytest.mark.parametrize("bad", ["", "SCN1", "SCN2.e30.AA", "SCN1.!!.AA", "SCN1.bm90IGpzb24.AA", "SCN1.e30.AA"])
def test_malformed_tokens_are_not_genuine(bad):
    with pytest.raises(notices.NotGenuine):
        notices.verify(bad, published(Ed25519PrivateKey.generate()))


# --- the PDFs ---------------------------------------------------------------------------------------
@pytest.fixture
def key_file(tmp_path, monkeypatch):
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "notice-key.pem"
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    monkeypatch.setenv("SPOTCHECK_NOTICE_KEY_FILE", str(path))
    return key


@pytest.fixture
def year(sqlite_engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", str(sqlite_engine.url))
    return populate(sqlite_engine)


def text_of(pdf: bytes) -> str:
    return "".join("".join(page.extract_text().split()) for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)


def embedded_fonts(pdf: bytes) -> list[str]:
    fonts = []
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            for descendant in font.get_object().get("/DescendantFonts", []):
                descriptor = descendant.get_object()["/FontDescriptor"].get_object()
                if any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                    fonts.append(str(descriptor["/FontName"]))
    return fonts


def test_the_inspection_notice(year, key_file, tmp_path, capsys):
    uscc = year.selected[0]
    out = tmp_path / "notice.pdf"
    assert main(["notice", "inspection", T1, uscc, "--out", str(out), "--json",
                 "--site-url", "https://gs.example.cn/"]) == 0
    made = json.loads(capsys.readouterr().out)
    pdf = out.read_bytes()
    text = text_of(pdf)
    for shown in ("检查通知书", "景市监抽查〔2025〕1号", T1, uscc, UNIT_NAMES[UNIT], "".join(LEGAL_BASIS.split()), "有效期至2025-06-30",
                  *(INSPECTORS[i] for i in TEAM), *TEAM):
        assert shown in text, shown
    assert made["token"] in text
    assert any("CJK" in name for name in embedded_fonts(pdf))
    stated = notices.verify(made["token"], published(key_file))
    assert (stated.task_id, stated.uscc, stated.team, stated.valid_until) == (T1, uscc, tuple(TEAM), date(2025, 6, 30))


def test_the_result_notice(year, key_file, tmp_path, capsys):
    uscc = next(u for u, c in year.results.items() if c == "unpublished_info")
    out = tmp_path / "result.pdf"
    assert main(["notice", "result", T1, uscc, "--out", str(out), "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    text = text_of(out.read_bytes())
    assert "检查结果告知书" in text and "未按规定公示应当公示的信息" in text and made["token"] in text
    assert notices.verify(made["token"], published(key_file)).uscc == uscc


def test_notices_are_refused_for_a_stranger_or_without_a_key(year, tmp_path, monkeypatch, capsys, key_file):
    out = tmp_path / "n.pdf"
    assert main(["notice", "inspection", T2, year.selected[0], "--out", str(out)]) == 2  # not a target of T2
    monkeypatch.delenv("SPOTCHECK_NOTICE_KEY_FILE")
    assert main(["notice", "inspection", T1, year.selected[0], "--out", str(out)]) == 2
    assert "SPOTCHECK_NOTICE_KEY_FILE" in capsys.readouterr().err
    assert not out.exists()
