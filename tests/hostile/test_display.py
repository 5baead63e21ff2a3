"""Display injection (issue 13): what a person typed is shown with its escapes visible, never obeyed."""
from __future__ import annotations

import pytest

from cli.common import shown
from tests.hostile.conftest import one_sentence


@pytest.mark.parametrize("raw, seen", [
    ("\x1b[2J\x1b[31mOK", "\\x1b[2J\\x1b[31mOK"),
    ("bell\x07", "bell\\x07"),
    ("abc\u202edcba", "abc\\u202edcba"),
    ("景市监抽查〔2025〕1号", "景市监抽查〔2025〕1号"),
    (None, ""),
])
def test_stored_text_is_printed_with_its_escapes_visible(raw, seen):
    assert shown(raw) == seen


@pytest.mark.parametrize("decision", ["D-\x1b[31m1", "D-\u202e1", "D\x07"])
def test_a_decision_number_with_a_control_character_is_refused_for_an_existing_lead(main, home, decision):
    """The lead is unknown here, so the refusal names the lead; nothing is printed raw either way."""
    code, out, err = main("case", "link", "no-such-lead", decision)
    one_sentence(code, out, err, 2, "no-such-lead")
    assert "\x1b" not in err and "\u202e" not in err and "\x07" not in err


@pytest.mark.parametrize("uri", ["javascript:alert(1)#" + "0" * 64, "../../etc/passwd#" + "0" * 64,
                                 "file:///etc/shadow#" + "0" * 64])
def test_an_evidence_uri_that_names_no_bureau_file_is_refused(uri):
    from domain.messages.target import CheckRecord
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="evidence"):
        CheckRecord(inspectors=["I1", "I2"], method="document", evidence=[uri])
