"""The database schema (SQLAlchemy Core).

Two kinds of table:
- directories (units, items, entities, inspectors): imported inputs, versioned. A row is one
  version of a record, in force from `valid_from` until `valid_to` (NULL: current). The directory
  as it stood at instant T is `valid_from <= T AND (valid_to IS NULL OR valid_to > T)`.
- projections: what the workflows did. Each row names the workflow and the step that wrote it,
  and (workflow_id, step) is unique, so an activity retried after its commit writes nothing twice.
List-valued columns hold their values sorted and joined by ';'.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)


def ByteOrder(length: int) -> String:
    """A key column compared in byte order on PostgreSQL (COLLATE "C"): digests depend on it."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class Instant(TypeDecorator):
    """An aware instant, stored in UTC: SQLite keeps no offset, so every instant goes in and comes out as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: instants must carry their time zone")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _versioned(name: str, key: Column, *columns: Column) -> Table:
    return Table(
        name,
        metadata,
        key,
        *columns,
        Column("valid_from", Instant(), primary_key=True),
        Column("valid_to", Instant(), nullable=True),
        # No foreign key: the importer writes a batch and its versions in one transaction, and the
        # per-row check halved the speed of a million-row import.
        Column("batch_id", Integer, nullable=False),
    )


import_batches = Table(
    "import_batches",
    metadata,
    Column("batch_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("file_name", Text, nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("imported_at", Instant(), nullable=False),
    Column("rows_read", Integer, nullable=False),
    Column("rows_changed", Integer, nullable=False),
)

units = _versioned(
    "units",
    Column("unit_code", ByteOrder(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("parent_code", ByteOrder(32), nullable=True),
    Column("review_required", Boolean, nullable=False),
)

items = _versioned(
    "items",
    Column("item_code", ByteOrder(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("legal_basis", Text, nullable=False),
    Column("category", String(8), nullable=False),
    Column("methods", Text, nullable=False),
    Column("qualification", String(32), nullable=False),
    Column("effective_from", Date, nullable=True),
    Column("effective_to", Date, nullable=True),
    Column("public_info_check", Boolean, nullable=False),
    Column("ratio_cap", String(8), nullable=True),
    Column("target_labels", Text, nullable=False),
    Column("checklist", Text, nullable=False),
)

entities = _versioned(
    "entities",
    Column("uscc", ByteOrder(18), primary_key=True),
    Column("name", Text, nullable=False),
    Column("subject_type", String(16), nullable=False),
    Column("region", String(6), nullable=False),
    Column("industry", String(8), nullable=False),
    Column("risk_class", String(1), nullable=False),  # '' = not yet classified (stratum U)
    Column("status", String(16), nullable=False),
    Column("address", Text, nullable=False),
    Column("labels", Text, nullable=False),
)
Index("ix_entities_current", entities.c.valid_to, entities.c.uscc)

inspectors = _versioned(
    "inspectors",
    Column("inspector_id", ByteOrder(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("unit_code", ByteOrder(32), nullable=False),
    Column("region", String(6), nullable=False),
    Column("qualifications", Text, nullable=False),
    Column("expertise", Text, nullable=False),
    Column("recusal", Text, nullable=False),
    Column("cert_no", String(64), nullable=False),
    Column("cert_expiry", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("roles", Text, nullable=False),
)

# --- the plan -----------------------------------------------------------------------------
plans = Table(
    "plans",
    metadata,
    Column("plan_code", ByteOrder(64), primary_key=True),
    Column("year", Integer, nullable=False),
    Column("owner_unit", ByteOrder(32), nullable=False),
    Column("document", Text, nullable=False),  # the validated plan file, canonical JSON
    Column("document_sha256", String(64), nullable=False),
    Column("loaded_at", Instant(), nullable=False),
)

plan_templates = Table(
    "plan_templates",
    metadata,
    Column("name", ByteOrder(64), primary_key=True),  # domain/launch.py TEMPLATE_NAME
    Column("document", Text, nullable=False),  # the template file as stored (`plan schedule --file`), UTF-8 text
    Column("document_sha256", String(64), nullable=False),  # of the file's bytes
    Column("stored_at", Instant(), nullable=False),
)

plan_tasks = Table(
    "plan_tasks",
    metadata,
    Column("task_id", ByteOrder(64), primary_key=True),
    Column("plan_code", ByteOrder(64), ForeignKey("plans.plan_code"), nullable=False, index=True),
    Column("document", Text, nullable=False),  # the task line, canonical JSON
    Column("origin", String(16), nullable=False),  # plan | adjustment
    Column("cancelled_at", Instant(), nullable=True),
    Column("cancel_reason", Text, nullable=True),
)

# --- projections of the workflows ----------------------------------------------------------
def _projection(name: str, *columns, unique_step: bool = True) -> Table:
    extra = [UniqueConstraint("workflow_id", "step")] if unique_step else []
    return Table(
        name,
        metadata,
        *columns,
        Column("workflow_id", String(200), nullable=False),
        Column("step", String(100), nullable=False),
        *extra,
    )


draws = _projection(
    "draws",
    Column("task_id", ByteOrder(64), primary_key=True),
    Column("draw_seq", Integer, primary_key=True),
    Column("state", String(16), nullable=False),  # announced | frozen | drawn | superseded
    Column("commitment", String(64), nullable=False),
    Column("nonce", String(64), nullable=False),  # secret until the reveal
    Column("population_salt", String(64), nullable=True),  # secret: auditors only
    Column("entropy_source", Text, nullable=False),
    Column("entropy", Text, nullable=True),
    Column("frozen_at", Instant(), nullable=True),
    Column("drawn_at", Instant(), nullable=True),
    Column("reason", Text, nullable=True),
    Column("approver", String(32), nullable=True),
    Column("record", Text, nullable=True),  # the public record, canonical JSON
    # True for draws frozen before migration 0006, whose population rows are kept in draw_population;
    # later populations are recomputed from the directory's history as of frozen_at (store/draws.py).
    Column("population_stored", Boolean, nullable=False, server_default=false()),
    unique_step=False,
)

# The frozen populations of draws made before migration 0006, kept as they were: no longer written.
draw_population = Table(
    "draw_population",
    metadata,
    Column("task_id", ByteOrder(64), primary_key=True),
    Column("draw_seq", Integer, primary_key=True),
    Column("uscc", ByteOrder(18), primary_key=True),
    Column("stratum", String(16), nullable=False),
)

# What a draw keeps of its own: the entities it selected (a few percent of its population).
draw_selection = Table(
    "draw_selection",
    metadata,
    Column("task_id", ByteOrder(64), primary_key=True),
    Column("draw_seq", Integer, primary_key=True),
    Column("uscc", ByteOrder(18), primary_key=True),
    Column("stratum", String(16), nullable=False),
)

targeted = Table(
    "targeted",
    metadata,
    Column("task_id", ByteOrder(64), primary_key=True),
    Column("uscc", ByteOrder(18), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("added_at", Instant(), nullable=False),
    # The law requiring the inspection, when the frequency cap would exclude the entity (R12's exception).
    Column("legal_basis", Text, nullable=True),
)

dispatch_pools = Table(
    "dispatch_pools",
    metadata,
    Column("task_id", ByteOrder(64), primary_key=True),
    Column("unit_code", ByteOrder(32), primary_key=True),
    Column("pool_digest", String(64), nullable=False),
    Column("pool_file", Text, nullable=False),  # auditors only
    Column("team_size", Integer, nullable=False),
    Column("load_cap", Integer, nullable=False),
    Column("frozen_at", Instant(), nullable=False),
)

teams = Table(
    "teams",
    metadata,
    Column("team_id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", ByteOrder(64), nullable=False),
    Column("uscc", ByteOrder(18), nullable=False),
    Column("unit_code", ByteOrder(32), nullable=False),
    Column("inspectors", Text, nullable=False),  # leader first, ';'-joined; '' when unstaffed
    Column("source", String(16), nullable=False),  # draw | unstaffed | manual (migration 0008)
    Column("reason", Text, nullable=True),
    Column("assigned_by", String(32), nullable=True),
    Column("at", Instant(), nullable=False),
    Column("workflow_id", String(200), nullable=False),
    Column("step", String(100), nullable=False),
    UniqueConstraint("workflow_id", "step", "uscc", "unit_code"),
)
Index("ix_teams_task_uscc", teams.c.task_id, teams.c.uscc)

targets = Table(
    "targets",
    metadata,
    Column("task_id", ByteOrder(64), primary_key=True),
    Column("uscc", ByteOrder(18), primary_key=True),
    Column("workflow_id", String(200), nullable=False),
    Column("kind", String(8), nullable=False),  # random | targeted
    Column("stage", String(24), nullable=False),
    Column("check_date", Date, nullable=True),
    Column("method", String(16), nullable=True),
    Column("category", String(32), nullable=True),
    Column("entered_by", String(32), nullable=True),
    Column("reviewed_by", String(32), nullable=True),
    Column("publication_due", Instant(), nullable=True),
    Column("published_at", Instant(), nullable=True),
    Column("overdue", Boolean, nullable=False, default=False),
    Column("updated_at", Instant(), nullable=False),
)

publications = _projection(
    "publications",
    Column("publication_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # plan | adjustment | task | draw | result
    Column("published_at", Instant(), nullable=False),
    Column("year", Integer, nullable=False),
    Column("plan_code", ByteOrder(64), nullable=True),
    Column("task_id", ByteOrder(64), nullable=True),
    Column("uscc", ByteOrder(18), nullable=True),
    Column("category", String(32), nullable=True),
    Column("unit", ByteOrder(32), nullable=True),
    Column("due_at", Instant(), nullable=True),
    Column("on_time", Boolean, nullable=True),
    Column("payload", Text, nullable=False),  # what the public sees, canonical JSON
)

# Corrections (更正) and stop-publication applications (R27): who asked, who decided, and when each took effect.
register_decisions = _projection(
    "register_decisions",
    Column("kind", String(24), nullable=False),  # correction | stop-publication
    Column("task_id", ByteOrder(64), nullable=False),
    Column("uscc", ByteOrder(18), nullable=False),
    Column("requested_by", Text, nullable=False),  # the correcting actor, or the applying entity
    Column("requested_at", Instant(), nullable=False),
    Column("reason", Text, nullable=False),  # the correction's reason, or the application's grounds
    Column("decision", String(16), nullable=True),  # approved | rejected | refused (R27: no period set)
    Column("decided_by", String(32), nullable=True),
    Column("decided_at", Instant(), nullable=True),
    Column("decision_reason", Text, nullable=True),
    Column("eligible_from", Instant(), nullable=True),  # the end of the minimum publication period
    Column("effective_at", Instant(), nullable=True),  # the correction published, the result withdrawn
)

follow_ups = _projection(
    "follow_ups",
    Column("lead_id", String(120), primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("task_id", ByteOrder(64), nullable=False),
    Column("task_code", Text, nullable=False),
    Column("uscc", ByteOrder(18), nullable=False),
    Column("entity_name", Text, nullable=False),
    Column("category", String(32), nullable=False),
    Column("state", String(16), nullable=False),  # open | closed
    Column("opened_at", Instant(), nullable=False),
    Column("due_at", Instant(), nullable=True),
    Column("closed_at", Instant(), nullable=True),
    Column("closed_by", Text, nullable=True),
    Column("decision_no", Text, nullable=True),
)

outbox = _projection(
    "outbox",
    Column("outbox_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("delivered_at", Instant(), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
)

alerts = _projection(
    "alerts",
    Column("alert_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # reminder | escalation | calendar | failure | refused
    Column("task_id", ByteOrder(64), nullable=True),
    Column("uscc", ByteOrder(18), nullable=True),
    Column("at", Instant(), nullable=False),
    Column("details", Text, nullable=False),
)

# --- the history archive (activities/archive.py) ---------------------------------------------
# Every closed workflow's event history, append-only, in one hash chain (seq order):
#   entry_hash = sha256(prev_hash "\n" workflow_id "\n" run_id "\n" history_sha256), the first prev_hash 64 zeros.
# prev_hash is unique: two entries can never follow the same one, so the chain cannot fork.
history_archive = Table(
    "history_archive",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("workflow_id", String(1000), nullable=False),  # Temporal's default id limit
    Column("run_id", String(64), nullable=False),
    Column("workflow_type", String(1000), nullable=False),
    Column("closed_at", Instant(), nullable=False, index=True),
    Column("history", Text, nullable=False),  # WorkflowHistory.to_json(), keys sorted; payloads as fetched
    Column("history_sha256", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=False, unique=True),
    Column("entry_hash", String(64), nullable=False),
    UniqueConstraint("workflow_id", "run_id"),
)

# --- accounts (store/users.py) -----------------------------------------------------------------
# Local accounts. Operator roles (planner, auditor, admin) live here; a field-role user is the
# directory's inspector of the same id, whose roles and unit are read from the directory at each request.
users = Table(
    "users",
    metadata,
    Column("user_id", ByteOrder(32), primary_key=True),
    Column("password_hash", Text, nullable=False),  # argon2id, PHC string
    Column("roles", Text, nullable=False),  # operator roles, ';'-joined
    Column("unit_code", ByteOrder(32), nullable=True),
    Column("status", String(16), nullable=False),  # active | disabled
    Column("failed_logins", Integer, nullable=False),  # wrong passwords in a row
    Column("locked_until", Instant(), nullable=True),
    Column("created_at", Instant(), nullable=False),
    Column("updated_at", Instant(), nullable=False),
)

# Login attempts in the current fixed window, per key: "user:ID" (existing or not) or "client:ADDRESS".
login_throttle = Table(
    "login_throttle",
    metadata,
    Column("throttle_key", String(200), primary_key=True),
    Column("window_start", Instant(), nullable=False),
    Column("attempts", Integer, nullable=False),
)

# --- the HTTP API's idempotency keys (store/idempotency.py) -------------------------------------
# One row per (user, Idempotency-Key): the request's fingerprint and, once answered, the answer, so the
# same key and body give the same answer, and another body under the same key is refused. A row
# without an answer is a request in flight or one whose API process died; its retry runs again under
# the same workflow update id (service.targets.send), so it takes effect once.
api_idempotency = Table(
    "api_idempotency",
    metadata,
    Column("user_id", ByteOrder(32), primary_key=True),
    Column("idem_key", String(200), primary_key=True),
    Column("fingerprint", String(64), nullable=False),  # sha256 of method, path and body
    Column("status_code", Integer, nullable=True),
    Column("response", Text, nullable=True),  # the answer's JSON body
    Column("created_at", Instant(), nullable=False),
)

# --- requests waiting for a second person's approval (store/approvals.py) -------------------------
# A planner asks for a redraw or a plan adjustment; a supervisor of the plan's owner unit (or above), another
# person, approves it with an act of their own (`spotcheck approve`), which carries it out. Both ids stay here,
# and the workflow's command names both.
approval_requests = Table(
    "approval_requests",
    metadata,
    Column("request_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # redraw | adjust
    Column("subject", ByteOrder(64), nullable=False),  # the task (redraw) or the plan (adjust)
    Column("owner_unit", ByteOrder(32), nullable=False),
    Column("command", Text, nullable=False),  # the command's fields but its approver, canonical JSON
    Column("requested_by", ByteOrder(32), nullable=False),
    Column("requested_at", Instant(), nullable=False),
    Column("state", String(16), nullable=False),  # pending | approved
    Column("approved_by", ByteOrder(32), nullable=True),
    Column("approved_at", Instant(), nullable=True),
    Column("answer", Text, nullable=True),  # what the workflow answered the approval
)
