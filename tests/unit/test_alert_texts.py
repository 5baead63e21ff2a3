"""Alerts are read by people in Chinese: no English sentence reaches the field app or a notification."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from domain import alert_texts
from domain.messages.target import Team, substitution_notices, team_notice

NOW = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
SOURCE = "lottery:2026-03-02"
UNITS = ["SC-UNIT-A", "SC-UNIT-B"]

TEXTS = [
    (alert_texts.PUBLICATION_DUE, []),
    (alert_texts.WITHHOLDING_DUE, []),
    (alert_texts.FIELD_WORK_REMINDER, []),
    (alert_texts.FIELD_WORK_DUE, []),
    (alert_texts.TEAM_TOLD, []),
    (alert_texts.TEAM_JOINED, []),
    (alert_texts.TEAM_LEFT, []),
    (alert_texts.staffing_reminder(UNITS), UNITS),
    (alert_texts.staffing_due(UNITS), UNITS),
    (alert_texts.entropy_reminder(SOURCE), [SOURCE]),
    (alert_texts.entropy_due(SOURCE), [SOURCE]),
]


@pytest.mark.parametrize("text, inserted", TEXTS)
def test_an_alert_is_a_chinese_sentence_around_the_names_it_carries(text, inserted):
    for value in inserted:
        assert value in text
        text = text.replace(value, "")
    assert re.search("[A-Za-z]", text) is None, text
    assert re.search("[\u4e00-\u9fff]", text)


def test_units_are_listed_with_the_chinese_enumeration_comma():
    assert "SC-UNIT-A、SC-UNIT-B" in alert_texts.staffing_due(UNITS)


def test_team_notices_carry_the_chinese_texts():
    team = Team(unit="SC-UNIT-A", inspectors=["I001", "I002"])
    assert team_notice("T1", "U1", NOW, [team]).details == alert_texts.TEAM_TOLD
    joined, left = substitution_notices("T1", "U1", NOW, "assign-1", ["I001", "I002"], ["I001", "I003"])
    assert (joined.details, joined.notify) == (alert_texts.TEAM_JOINED, ["I003"])
    assert (left.details, left.notify) == (alert_texts.TEAM_LEFT, ["I002"])
