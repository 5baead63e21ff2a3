"""domain/text.py: untrusted text bounded, refused with one line naming the field and the cap or rule."""
from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.text import (
    EVIDENCE_CAP,
    FORBIDDEN,
    TextRefused,
    check_evidence_uri,
    check_id,
    check_line,
    check_note,
    for_terminal,
)

DIGEST = "0123456789abcdef" * 4
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e",
        "\u200f", "\u061c"]
CONTROLS = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]]


def refusal(check, *args, **kwargs) -> str:
    with pytest.raises(TextRefused) as caught:
        check(*args, **kwargs)
    return str(caught.value)


# --- lines and notes ------------------------------------------------------------------------------
def test_a_text_beyond_its_cap_names_the_length_and_the_cap():
    assert refusal(check_note, "x" * 120000, "note", 2000) == "note is 120000 characters; the cap is 2000"
    assert refusal(check_line, "名" * 33, "name", 32) == "name is 33 characters; the cap is 32"


def test_a_text_at_its_cap_passes():
    assert check_line("名" * 32, "name", 32) == "名" * 32
    assert check_line("", "reason", 10) == ""  # whether blank is allowed is the field's rule


@pytest.mark.parametrize(("text", "refused"), [
    ("ok\x1b[31mred", "reason holds U+001B at character 3: a control character (terminal escape sequences start "
                      "with one); it is refused"),
    ("a\tb", "reason holds U+0009 at character 2: a line break or tab; this field is one line; it is refused"),
    ("a\rb", "reason holds U+000D at character 2: a carriage return, which overwrites a line on a terminal; "
             "it is refused"),
    ("x\x85", "reason holds U+0085 at character 2: a control character (terminal escape sequences start with one); "
              "it is refused"),
    ("abc\u2066def", "reason holds U+2066 at character 4: LEFT-TO-RIGHT ISOLATE, a bidirectional or line control "
                     "that reorders or breaks what a reader sees; it is refused"),
    ("\u2028", "reason holds U+2028 at character 1: LINE SEPARATOR, a bidirectional or line control that reorders "
               "or breaks what a reader sees; it is refused"),
    ("\udc80", "reason holds U+DC80 at character 1: a lone UTF-16 surrogate, which is not text; it is refused"),
])
def test_a_line_refuses_control_bidi_and_line_characters_naming_the_first(text, refused):
    assert refusal(check_line, text, "reason", 100) == refused


@pytest.mark.parametrize("char", BIDI + CONTROLS)
def test_every_forbidden_character_is_refused_in_a_line(char):
    assert refusal(check_line, f"a{char}", "name", 10).startswith(f"name holds U+{ord(char):04X} at character 2: ")


def test_a_note_keeps_line_feeds_and_tabs_and_stores_cr_lf_as_lf():
    assert check_note("第一行\r\n\t第二行\n", "note", 100) == "第一行\n\t第二行\n"


def test_cr_lf_is_counted_as_one_character_against_the_cap():
    assert check_note("a\r\nb", "note", 3) == "a\nb"


@pytest.mark.parametrize("text", ["a\rb", "\x1b[2K", "x\u202ey", "\x00"])
def test_a_note_refuses_everything_else(text):
    assert refusal(check_note, text, "note", 100).startswith("note holds U+")


def test_a_value_that_is_not_text_is_refused():
    assert refusal(check_line, None, "name", 10) == "name must be text, not NoneType"
    assert refusal(check_note, b"x", "note", 10) == "note must be text, not bytes"


# --- ids ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("good", ["I001", "a.b_c-d", "x" * 32])
def test_good_ids(good):
    assert check_id(good, "inspector") == good


@pytest.mark.parametrize(("bad", "refused"), [
    ("", 'inspector "": must be 1-32 of A-Z a-z 0-9 . _ -'),
    ("x" * 33, 'inspector "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx": must be 1-32 of A-Z a-z 0-9 . _ -'),
    ("I001\n", 'inspector "I001\\n": must be 1-32 of A-Z a-z 0-9 . _ -'),
    ("张三", 'inspector "张三": must be 1-32 of A-Z a-z 0-9 . _ -'),
    ("a b", 'inspector "a b": must be 1-32 of A-Z a-z 0-9 . _ -'),
    ("\x1b[31m", 'inspector "\\x1b[31m": must be 1-32 of A-Z a-z 0-9 . _ -'),
    ("Ｉ001", 'inspector "Ｉ001": must be 1-32 of A-Z a-z 0-9 . _ -'),
    (7, "inspector (int): must be 1-32 of A-Z a-z 0-9 . _ -"),
])
def test_bad_ids_are_refused_and_shown_escaped(bad, refused):
    assert refusal(check_id, bad, "inspector") == refused


def test_a_long_bad_id_is_shown_shortened():
    assert refusal(check_id, "é" * 100, "user") == f'user "{"é" * 40}…": must be 1-32 of A-Z a-z 0-9 . _ -'


# --- evidence URIs --------------------------------------------------------------------------------
@pytest.mark.parametrize("uri", [
    "s3://bucket/a.jpg", "https://files.bureau.example/2025/照片-1.jpg", "http://10.0.0.5:8080/docs/record.pdf",
    "https://dms.example/download.do?id=123", "HTTPS://host/a",
])
def test_good_evidence(uri):
    assert check_evidence_uri(f"{uri}#{DIGEST}") == f"{uri}#{DIGEST}"


SCHEMES = "https://, http://, s3:// (URI#sha256)"


@pytest.mark.parametrize(("uri", "why"), [
    (f"javascript:alert(1)//#{DIGEST}", f"scheme javascript: is refused; evidence is a file at {SCHEMES}"),
    (f"file:///etc/passwd#{DIGEST}", f"scheme file: is refused; evidence is a file at {SCHEMES}"),
    (f"data:text/html,x#{DIGEST}", f"scheme data: is refused; evidence is a file at {SCHEMES}"),
    (f"/srv/evidence/a.jpg#{DIGEST}", f"no scheme is refused; evidence is a file at {SCHEMES}"),
    (f"s3://bucket/../secrets/a.jpg#{DIGEST}", "has a . or .. path segment; evidence names one file, never a way up or "
                                             "around a directory"),
    (f"s3://bucket/a/%2e%2E/b.jpg#{DIGEST}", "has a . or .. path segment; evidence names one file, never a way up or "
                                           "around a directory"),
    (f"https://host/a/..%2fb.jpg#{DIGEST}", "has a . or .. path segment; evidence names one file, never a way up or "
                                          "around a directory"),
    (f"https://host/./a.jpg#{DIGEST}", "has a . or .. path segment; evidence names one file, never a way up or "
                                     "around a directory"),
    (f"https://host/a\\..\\b.jpg#{DIGEST}", "a URI holds no space or backslash (percent-encode a space as %20)"),
    (f"https://host/a b.jpg#{DIGEST}", "a URI holds no space or backslash (percent-encode a space as %20)"),
    (f"https://user:pw@host/a.jpg#{DIGEST}", "carries credentials (user@host); an evidence URI names no account"),
    (f"https:/host/a.jpg#{DIGEST}", "must name a host or bucket after https://"),
    (f"https:///a.jpg#{DIGEST}", 'the host or bucket "" is not a name'),
    (f"https://host/#{DIGEST}", "names no file (the path is empty or ends with /)"),
    (f"s3://bucket#{DIGEST}", "names no file (the path is empty or ends with /)"),
    (f"s3://bucket/a#b.jpg#{DIGEST}", "holds more than one #"),
    ("s3://bucket/a.jpg", "must be URI#sha256 (the file's URI, #, its sha256)"),
    (f"s3://bucket/a.jpg#{DIGEST.upper()}", "after the last # must come the file's sha256, 64 lower-case hex digits"),
    (f"s3://bucket/a.jpg#{DIGEST[:-1]}", "after the last # must come the file's sha256, 64 lower-case hex digits"),
])
def test_bad_evidence_is_refused_naming_the_rule(uri, why):
    refused = refusal(check_evidence_uri, uri)
    assert refused.startswith("evidence ") and refused.endswith(why), refused


def test_evidence_with_a_control_character_or_beyond_its_cap_is_refused():
    assert refusal(check_evidence_uri, f"s3://b/\x1b[2Ja#{DIGEST}").startswith("evidence holds U+001B at character 8")
    long = f"s3://b/{'a' * EVIDENCE_CAP}#{DIGEST}"
    assert refusal(check_evidence_uri, long, "evidence[0]") == (
        f"evidence[0] is {len(long)} characters; the cap is {EVIDENCE_CAP}")


# --- for_terminal ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "shown"), [
    ("plain 名称", "plain 名称"),
    ("\x1b[2J\x1b[31mPASS", "\\x1b[2J\\x1b[31mPASS"),
    ("a\u202eb\u2066c", "a\\u202eb\\u2066c"),
    ("line\r\nnext\tx", "line\\r\\nnext\\tx"),
    ("C:\\plan.json", "C:\\\\plan.json"),
    ("\x85\x7f\udc80", "\\x85\\x7f\\udc80"),
])
def test_for_terminal_shows_escapes_instead_of_obeying_them(text, shown):
    assert for_terminal(text) == shown


# --- properties -----------------------------------------------------------------------------------
NASTY = st.sampled_from(["\x1b[31m", "\x00", "\r", "\n", "\t", "\x7f", "\x9b", "\u2028", "\ud800", *BIDI])
TEXTS = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(st.text(max_size=5), NASTY), max_size=12).map("".join),
    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=3), st.integers(1, 50_000)),  # huge
    st.just(""),
)


@given(TEXTS, st.integers(0, 100))
def test_a_line_is_accepted_unchanged_exactly_when_clean_and_within_its_cap(text, cap):
    clean = FORBIDDEN.search(text) is None and len(text) <= cap
    try:
        accepted = check_line(text, "name", cap)
    except TextRefused as refused:
        message = str(refused)
        assert not clean, message
        assert message.startswith("name ") and len(message) < 300
        assert FORBIDDEN.search(message) is None  # one line, safe to print
    else:
        assert clean and accepted == text


@given(TEXTS, st.integers(0, 100))
def test_a_note_is_accepted_exactly_when_clean_except_line_feeds_and_tabs(text, cap):
    stored = text.replace("\r\n", "\n")
    clean = FORBIDDEN.search(stored.replace("\n", "").replace("\t", "")) is None and len(stored) <= cap
    try:
        accepted = check_note(text, "note", cap)
    except TextRefused as refused:
        assert not clean and FORBIDDEN.search(str(refused)) is None and len(str(refused)) < 300
    else:
        assert clean and accepted == stored


@given(TEXTS)
def test_for_terminal_leaves_nothing_forbidden_and_reads_back(text):
    shown = for_terminal(text)
    assert FORBIDDEN.search(shown) is None
    assert shown.encode("ascii", "backslashreplace").decode("unicode_escape") == text


@given(TEXTS)
def test_an_id_is_accepted_exactly_by_its_grammar(text):
    try:
        assert check_id(text, "user") == text
    except TextRefused as refused:
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,32}", text) is None
        assert FORBIDDEN.search(str(refused)) is None and len(str(refused)) < 300
    else:
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,32}", text)


@given(TEXTS)
def test_evidence_is_refused_with_one_line_or_has_the_form(text):
    for candidate in (text, f"s3://bucket/{text}#{DIGEST}"):
        try:
            accepted = check_evidence_uri(candidate)
        except TextRefused as refused:
            assert str(refused).startswith("evidence ") and FORBIDDEN.search(str(refused)) is None
            assert len(str(refused)) < 400
        else:
            assert accepted.startswith(("s3://", "https://", "http://")) and accepted.endswith("#" + DIGEST)
            assert FORBIDDEN.search(accepted) is None and ".." not in accepted.split("?")[0].split("/")


def test_a_file_of_the_evidence_store_is_named_by_its_hash():
    digest = "ab" * 32
    assert check_evidence_uri(f"evidence:{digest}/%E7%8E%B0%E5%9C%BA.jpg#{digest}") == \
        f"evidence:{digest}/%E7%8E%B0%E5%9C%BA.jpg#{digest}"
    with pytest.raises(TextRefused, match="twice the same"):
        check_evidence_uri(f"evidence:{'cd' * 32}/photo.jpg#{digest}")
    with pytest.raises(TextRefused, match="names no single file"):
        check_evidence_uri(f"evidence:{digest}/%2E%2E#{digest}")
    with pytest.raises(TextRefused, match="names no single file"):
        check_evidence_uri(f"evidence:{digest}/a%2Fb#{digest}")
