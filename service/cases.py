"""Cases: linking a case lead to the penalty decision (处罚决定书) it led to."""
from __future__ import annotations

from db.engine import Connection
from domain.categories import FollowUpKind
from domain.text import TextRefused, check_line
from store import cases

DECISION_NO_CAP = 100  # characters; a decision number such as 景市监处罚〔2025〕123号 is about 15


class CaseLinkConflict(ValueError):
    """The lead already carries another decision number."""


def link_case(connection: Connection, lead_id: str, decision_no: str) -> dict:
    """Record the penalty decision number (处罚决定书文号) a case lead led to.

    Returns the case (case_list shape) with `already_recorded`: True when the lead already carried
    this very number (a repeat is reported, not refused). Raises LookupError for an unknown lead,
    ValueError for a follow-up that is not a case lead or an empty number, and CaseLinkConflict
    (a ValueError) when the lead carries another number. The state is not changed: a lead closes
    when the case system accepts it, and the decision may come long after.
    """
    decision_no = (decision_no or "").strip()
    if not decision_no:
        raise ValueError(f"empty decision number for case lead {lead_id!r}")
    lead = cases.case(connection, lead_id)
    if lead is None:
        raise LookupError(f"case lead {lead_id!r} not found")
    if lead["kind"] != FollowUpKind.CASE_LEAD.value:
        raise ValueError(f"{lead_id!r} is a {lead['kind']} follow-up, not a case lead: only a case lead takes a decision number")
    try:
        check_line(decision_no, "decision number", DECISION_NO_CAP)
    except TextRefused as refused:
        raise ValueError(f"case lead {lead_id!r}: {refused}") from None
    linked = cases.record_decision(connection, lead_id, decision_no)
    lead = cases.case(connection, lead_id)
    if not linked and lead["decision_no"] != decision_no:
        raise CaseLinkConflict(
            f"case lead {lead_id!r} already carries decision {lead['decision_no']!r}; refusing {decision_no!r}")
    return {**lead, "already_recorded": not linked}
