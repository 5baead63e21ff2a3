"""Wedges (issue 13): a command that passed the door and then failed in an activity for ever, leaving the
target unable to take its next command. An id the projection cannot hold (32 characters) is now refused by
the command's record, at the door and again when the worker decodes it, before any activity runs."""
from __future__ import annotations

import pydantic
import pytest

from domain.messages.target import CheckRecord, FieldSignal, ManualAssignment, Recheck, ResultEntry, Review
from domain.messages.task import Redraw

LONG_ID = "I" * 40  # the probe's 40-character inspector id; entered_by is 32 characters

COMMANDS = {
    "assign": lambda who: ManualAssignment(unit="360202-SCJ", inspectors=[who, "JDZ-I014"], by="JDZ-I022",
                                           reason="substitute"),
    "assign-by": lambda who: ManualAssignment(unit="360202-SCJ", inspectors=["JDZ-I013", "JDZ-I014"], by=who,
                                              reason="substitute"),
    "check": lambda who: CheckRecord(inspectors=[who, "JDZ-I014"], method="document"),
    "result": lambda who: ResultEntry(inspector=who, category="no_issue"),
    "review": lambda who: Review(reviewer=who, approve=True),
    "recheck": lambda who: Recheck(inspector=who, passed=True),
    "signal": lambda who: FieldSignal(kind="arrive", inspector=who),
    "redraw": lambda who: Redraw(reason="challenged", approver=who),
}


@pytest.mark.parametrize("verb", list(COMMANDS))
@pytest.mark.parametrize("who", [LONG_ID, "", "JDZ I013", "JDZ-I013\x1b[2J", "JDZ‮-I013"])
def test_an_id_the_store_cannot_hold_is_refused_by_the_record(verb, who):
    with pytest.raises(pydantic.ValidationError) as refused:
        COMMANDS[verb](who)
    assert "1-32" in str(refused.value) or "pattern" in str(refused.value)


@pytest.mark.parametrize("verb", list(COMMANDS))
def test_the_next_valid_command_is_taken(verb):
    assert COMMANDS[verb]("JDZ-I013")


def test_a_team_of_more_people_than_the_cap_is_refused_naming_it():
    with pytest.raises(pydantic.ValidationError, match="names 21 people; the cap is 20"):
        ManualAssignment(unit="360202-SCJ", inspectors=[f"I{n}" for n in range(21)], by="S1", reason="r")
