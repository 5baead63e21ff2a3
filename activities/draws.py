"""Draw activities: announce, freeze, draw, dispatch (draw-protocol.md), and the task's paging and close.

Freeze, draw and dispatch run on the heavy task queue in their own process: each is one
transaction, heartbeating, restartable from scratch, and a retry after a commit returns the
stored result. Secrets (the nonce before its reveal, the population salt) live only here, in the
database, never in a payload.
"""
from __future__ import annotations

import json
import secrets
from datetime import date, datetime, timezone

from sqlalchemy import Connection, Engine, String, and_, case, delete, func, insert, literal, or_, select, update
from temporalio import activity

from activities.directory import entity_name, has_any_label, in_force, items_of, split, task_line
from activities.register import publish
from activities.common import not_found, workflow_id
from store.common import canonical_json, insert_once, one_by
from activities.targets import open_targets, target_counts
from db import schema
from domain import dispatch as dispatch_protocol
from domain import draw as draw_protocol
from domain.records import (
    Announcement,
    DispatchSummary,
    DrawSummary,
    FreezeSummary,
    TargetedStep,
    TargetsPage,
    Stage,
    TargetCounts,
    TaskClosing,
    TaskStep,
    TaskTargets,
)
from domain.workdays import SHANGHAI

HEARTBEAT_ROWS = 50_000
e, dp = schema.entities, schema.draw_population


class DrawActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- announce (light) --------------------------------------------------------------------
    @activity.defn
    def announce(self, step: TaskStep) -> Announcement:
        with self._engine.begin() as connection:
            line, year = task_line(connection, step.task_id)
            nonce = secrets.token_bytes(32)  # made once: a retry finds the stored row
            insert_once(connection, schema.draws, dict(
                task_id=step.task_id, draw_seq=step.draw_seq, state="announced",
                commitment=draw_protocol.commitment(nonce), nonce=nonce.hex(),
                entropy_source=line["entropy_source"], reason=step.reason, approver=step.approver,
                workflow_id=workflow_id(), step=f"announce-{step.draw_seq}",
            ), keys=("task_id", "draw_seq"))
            stored = one_by(connection, schema.draws, task_id=step.task_id, draw_seq=step.draw_seq)
            publish(connection, workflow_id=workflow_id(), step=f"announce-{step.draw_seq}", kind="task",
                    at=datetime.now(timezone.utc), year=year, task_id=step.task_id, unit=line["unit"],
                    payload={"task_id": step.task_id, "task_code": line["task_code"], "name": line["name"],
                             "items": line["items"], "unit": line["unit"],
                             "partner_units": line.get("partner_units", []), "ratios": line["ratios"],
                             "starts": line["starts"], "ends": line["ends"], "draw_seq": step.draw_seq,
                             "commitment": stored.commitment, "entropy_source": stored.entropy_source})
        return Announcement(commitment=stored.commitment, entropy_source=stored.entropy_source)

    # --- freeze (heavy) ----------------------------------------------------------------------
    @activity.defn
    def freeze(self, step: TaskStep) -> FreezeSummary:
        with self._engine.begin() as connection:
            draw = self._draw_row(connection, step)
            if draw.state != "announced":
                return FreezeSummary.model_validate(json.loads(draw.record)["freeze"])
            line, year = task_line(connection, step.task_id)
            lock_year(connection, year)
            frozen_at = datetime.now(timezone.utc)
            exclusions = self._freeze_population(connection, step, line, year, frozen_at)
            salt = secrets.token_bytes(32)
            digest = draw_protocol.PopulationDigest(salt)
            for n, row in enumerate(connection.execute(
                select(dp.c.uscc, dp.c.stratum).where(dp.c.task_id == step.task_id, dp.c.draw_seq == step.draw_seq)
                .order_by(dp.c.uscc)
            ).yield_per(10_000)):
                digest.add(row.uscc, row.stratum)
                if n % HEARTBEAT_ROWS == 0:
                    activity.heartbeat(f"digest {n}")
            self._freeze_pools(connection, step.task_id, line, frozen_at)
            summary = FreezeSummary(frozen_at=frozen_at, population=sum(digest.counts.values()),
                                    strata=digest.counts, exclusions=exclusions,
                                    population_digest=digest.hexdigest())
            connection.execute(update(schema.draws).where(*self._draw_key(step)).values(
                state="frozen", frozen_at=frozen_at, population_salt=salt.hex(),
                record=canonical_json({"freeze": summary.model_dump(mode="json")}),
            ))
            publish(connection, workflow_id=workflow_id(), step=f"freeze-{step.draw_seq}", kind="draw",
                    at=frozen_at, year=year, task_id=step.task_id, unit=line["unit"],
                    payload={"task_id": step.task_id, "draw_seq": step.draw_seq, "frozen_at": frozen_at.isoformat(),
                             "population_digest": summary.population_digest, "population": summary.population,
                             "exclusions": exclusions})
        return summary

    def _freeze_population(self, connection: Connection, step: TaskStep, line: dict, year: int,
                           frozen_at: datetime) -> dict[str, int]:
        """Write the eligible population; return the excluded entities counted by reason."""
        conditions = [in_force(e, frozen_at)]
        task_filter = line.get("filter", {})
        if task_filter.get("subject_type"):
            conditions.append(e.c.subject_type.in_(task_filter["subject_type"]))
        for column in ("region", "industry"):
            if task_filter.get(column):
                conditions.append(or_(*(e.c[column].startswith(p) for p in task_filter[column])))
        if task_filter.get("labels"):
            conditions.append(has_any_label(e.c.labels, task_filter["labels"]))
        for item in items_of(connection, line["items"], frozen_at):
            if item["target_labels"]:
                conditions.append(has_any_label(e.c.labels, split(item["target_labels"])))

        selected_this_year = selections_this_year(year, step.task_id)
        reason = case(
            (e.c.status != "active", e.c.status),
            (and_(e.c.risk_class == "A", selected_this_year.c.times.is_not(None)), literal("a_class_already_drawn")),
            (selected_this_year.c.times >= int(line["frequency_cap"]), literal("frequency_cap")),
            else_=literal(None, String),
        ).label("reason")
        stratum = case((e.c.risk_class == "", literal("U")), else_=e.c.risk_class).label("stratum")
        candidates = (
            select(e.c.uscc, stratum, reason)
            .select_from(e.outerjoin(selected_this_year, selected_this_year.c.uscc == e.c.uscc))
            .where(*conditions)
            .subquery()
        )
        connection.execute(insert(dp).from_select(
            ["task_id", "draw_seq", "uscc", "stratum", "selected"],
            select(literal(step.task_id), literal(step.draw_seq), candidates.c.uscc, candidates.c.stratum,
                   literal(False)).where(candidates.c.reason.is_(None)),
        ))
        counted = connection.execute(
            select(candidates.c.reason, func.count()).where(candidates.c.reason.is_not(None))
            .group_by(candidates.c.reason)
        ).all()
        return {r: n for r, n in sorted(counted)}

    def _freeze_pools(self, connection: Connection, task_id: str, line: dict, frozen_at: datetime) -> None:
        """Freeze each dispatching unit's inspector pool before the entropy is revealed (sc-dispatch-v1 §1)."""
        i = schema.inspectors
        for unit in [line["unit"], *line.get("partner_units", [])]:
            rows = connection.execute(
                select(i).where(i.c.unit_code == unit, in_force(i, frozen_at), has_any_label(i.c.roles, ["inspector"]))
            ).mappings().all()
            pool = dispatch_protocol.pool_file(
                dispatch_protocol.PoolInspector(
                    inspector_id=r["inspector_id"], status=r["status"], cert_expiry=r["cert_expiry"],
                    qualifications=tuple(split(r["qualifications"])), recusal=tuple(split(r["recusal"])))
                for r in rows
            )
            insert_once(connection, schema.dispatch_pools, dict(
                task_id=task_id, unit_code=unit, pool_digest=dispatch_protocol.pool_digest(pool),
                pool_file=pool.decode("ascii"), team_size=int(line["team_size"]), load_cap=int(line["load_cap"]),
                frozen_at=frozen_at,
            ), keys=("task_id", "unit_code"))

    # --- draw (heavy) ------------------------------------------------------------------------
    @activity.defn
    def draw(self, step: TaskStep) -> DrawSummary:
        with self._engine.begin() as connection:
            draw = self._draw_row(connection, step)
            if draw.state in ("drawn", "superseded"):
                return DrawSummary.model_validate(json.loads(draw.record)["summary"])
            if draw.state != "frozen":
                raise not_found(f"frozen population of task {step.task_id} draw {step.draw_seq}")
            line, year = task_line(connection, step.task_id)
            lock_year(connection, year)
            freeze = json.loads(draw.record)["freeze"]
            strata = draw_protocol.plan_strata(freeze["strata"], line["ratios"])
            nonce = bytes.fromhex(draw.nonce)
            seed = draw_protocol.draw_seed(step.task_id, freeze["population_digest"], nonce, step.entropy)
            population = connection.execute(
                select(dp.c.uscc, dp.c.stratum).where(dp.c.task_id == step.task_id, dp.c.draw_seq == step.draw_seq)
                .order_by(dp.c.uscc)
            ).yield_per(10_000)
            selected = draw_protocol.select(seed, population, {s: p.quota for s, p in strata.items()})
            activity.heartbeat(f"selected {len(selected)}")
            self._mark_selected(connection, step, selected)
            conflicts = self._conflicts(connection, step, year, int(line["frequency_cap"]))
            targeted = 0 if conflicts else self._record_targets(connection, step.task_id, selected)
            drawn_at = datetime.now(timezone.utc)
            summary = DrawSummary(seed=seed.hex(), selected=len(selected), targeted=targeted,
                                  strata={s: p.quota for s, p in strata.items()},
                                  selection_digest=draw_protocol.selection_digest(selected), conflicts=conflicts)
            record = {
                "protocol": draw_protocol.PROTOCOL, "task_id": step.task_id, "task_code": line["task_code"],
                "draw_seq": step.draw_seq, "supersedes": step.draw_seq - 1 if step.draw_seq > 1 else None,
                "reason": draw.reason, "approver": draw.approver, "frozen_at": freeze["frozen_at"],
                "population_digest": freeze["population_digest"],
                "strata": {s: {"population": p.population, "ratio": p.ratio, "quota": p.quota}
                           for s, p in strata.items()},
                "exclusions": freeze["exclusions"], "commitment": draw.commitment,
                "entropy_source": draw.entropy_source, "entropy": step.entropy, "nonce": draw.nonce,
                "seed": summary.seed, "selection_digest": summary.selection_digest,
            }
            connection.execute(update(schema.draws).where(*self._draw_key(step)).values(
                state="superseded" if conflicts else "drawn", entropy=step.entropy, drawn_at=drawn_at,
                record=canonical_json({"freeze": freeze, "summary": summary.model_dump(mode="json"),
                                       "public": record}),
            ))
            publish(connection, workflow_id=workflow_id(), step=f"draw-{step.draw_seq}", kind="draw", at=drawn_at,
                    year=year, task_id=step.task_id, unit=line["unit"], payload=record)
            if conflicts:
                publish(connection, workflow_id=workflow_id(), step=f"supersede-{step.draw_seq}", kind="draw",
                        at=drawn_at, year=year, task_id=step.task_id, unit=line["unit"],
                        payload={"task_id": step.task_id, "draw_seq": step.draw_seq, "state": "superseded",
                                 "superseded_by": step.draw_seq + 1, "reason": conflict_reason(conflicts),
                                 "approver": SYSTEM_APPROVER})
        return summary

    def _conflicts(self, connection: Connection, step: TaskStep, year: int, frequency_cap: int) -> int:
        """Selected entities another task drew after this freeze, which R12 or R14 now exclude.

        Freezes and draws of a year hold one lock, but a freeze waits for its entropy before drawing:
        two frozen tasks can both hold an A-class entity. The later draw then is superseded and a
        new freeze excludes it, so the record of every draw stays reproducible.
        """
        others = selections_this_year(year, step.task_id)
        return connection.execute(
            select(func.count()).select_from(dp.join(others, others.c.uscc == dp.c.uscc)).where(
                dp.c.task_id == step.task_id, dp.c.draw_seq == step.draw_seq, dp.c.selected,
                or_(dp.c.stratum == "A", others.c.times >= frequency_cap))
        ).scalar()

    def _mark_selected(self, connection: Connection, step: TaskStep, selected: list[str]) -> None:
        for start in range(0, len(selected), 1000):
            connection.execute(
                update(dp).where(dp.c.task_id == step.task_id, dp.c.draw_seq == step.draw_seq,
                                 dp.c.uscc.in_(selected[start:start + 1000])).values(selected=True)
            )

    def _record_targets(self, connection: Connection, task_id: str, selected: list[str]) -> int:
        """Projection rows for the drawn entities and for targeted ones that were not drawn."""
        now = datetime.now(timezone.utc)
        chosen = set(selected)
        extra = [r.uscc for r in connection.execute(
            select(schema.targeted.c.uscc).where(schema.targeted.c.task_id == task_id).order_by(schema.targeted.c.uscc)
        ) if r.uscc not in chosen]
        rows = [dict(task_id=task_id, uscc=u, workflow_id="", kind=kind, stage="drawn", overdue=False, updated_at=now)
                for kind, usccs in (("random", selected), ("targeted", extra)) for u in usccs]
        if rows:
            connection.execute(insert(schema.targets), rows)
        return len(extra)

    # --- dispatch (heavy) --------------------------------------------------------------------
    @activity.defn
    def dispatch(self, step: TaskStep) -> DispatchSummary:
        t = schema.teams
        with self._engine.begin() as connection:
            existing = connection.execute(
                select(t.c.source, func.count()).where(t.c.task_id == step.task_id, t.c.step == "dispatch")
                .group_by(t.c.source)
            ).all()
            if existing:
                counts = dict(existing)
                return DispatchSummary(teams=counts.get("draw", 0), unstaffed=counts.get("unstaffed", 0))
            line, _ = task_line(connection, step.task_id)
            draw = json.loads(self._draw_row(connection, step).record)
            seed = bytes.fromhex(draw["summary"]["seed"])
            as_of = datetime.now(SHANGHAI).date()
            required = sorted({item["qualification"] for item in items_of(connection, line["items"],
                                                                             datetime.now(timezone.utc))})
            targets = [r.uscc for r in connection.execute(
                select(schema.targets.c.uscc).where(schema.targets.c.task_id == step.task_id)
                .order_by(schema.targets.c.uscc))]
            pools = connection.execute(
                select(schema.dispatch_pools).where(schema.dispatch_pools.c.task_id == step.task_id)
                .order_by(schema.dispatch_pools.c.unit_code)
            ).mappings().all()
            now = datetime.now(timezone.utc)
            rows, teams, unstaffed = [], 0, 0
            for pool in pools:
                outcome = dispatch_protocol.dispatch(
                    dispatch_protocol.dispatch_seed(seed, pool["unit_code"], pool["pool_digest"], pool["team_size"],
                                                    pool["load_cap"]),
                    targets, parse_pool(pool["pool_file"]), required, pool["team_size"], pool["load_cap"], as_of,
                )
                for uscc in outcome.order:
                    team = outcome.teams.get(uscc)
                    rows.append(dict(task_id=step.task_id, uscc=uscc, unit_code=pool["unit_code"],
                                     inspectors=";".join(team or []), source="draw" if team else "unstaffed",
                                     reason=outcome.unstaffed.get(uscc), at=now, workflow_id=workflow_id(),
                                     step="dispatch"))
                teams += len(outcome.teams)
                unstaffed += len(outcome.unstaffed)
                activity.heartbeat(f"dispatched {pool['unit_code']}")
            if rows:
                connection.execute(insert(t), rows)
            connection.execute(update(schema.draws).where(*self._draw_key(step)).values(
                record=canonical_json({**draw, "dispatch_as_of": as_of.isoformat(),
                                       "required_qualifications": required})))
        return DispatchSummary(teams=teams, unstaffed=unstaffed)

    # --- targeted entities and redraws (light) --------------------------------------------------
    @activity.defn
    def record_targeted(self, step: TargetedStep) -> None:
        """A targeted entity, recorded before the freeze; the freeze keeps it in the population."""
        with self._engine.begin() as connection:
            if not entity_name(connection, step.uscc):
                raise not_found(f"entity {step.uscc} in the directory")
            insert_once(connection, schema.targeted, dict(task_id=step.task_id, uscc=step.uscc, reason=step.reason,
                                                          added_at=step.at), keys=("task_id", "uscc"))

    @activity.defn
    def supersede_draw(self, step: TaskStep) -> None:
        """Before dispatch only: the draw stays on record, published as superseded; its un-started targets go."""
        with self._engine.begin() as connection:
            line, year = task_line(connection, step.task_id)
            lock_year(connection, year)
            connection.execute(update(schema.draws).where(*self._draw_key(step), schema.draws.c.state == "drawn")
                               .values(state="superseded"))
            connection.execute(delete(schema.targets).where(schema.targets.c.task_id == step.task_id,
                                                            schema.targets.c.workflow_id == ""))
            publish(connection, workflow_id=workflow_id(), step=f"supersede-{step.draw_seq}", kind="draw",
                    at=datetime.now(timezone.utc), year=year, task_id=step.task_id, unit=line["unit"],
                    payload={"task_id": step.task_id, "draw_seq": step.draw_seq, "state": "superseded",
                             "superseded_by": step.draw_seq + 1, "reason": step.reason, "approver": step.approver})

    # --- paging and closing (light) -----------------------------------------------------------
    @activity.defn
    def targets_page(self, page: TargetsPage) -> list[str]:
        t = schema.targets
        query = select(t.c.uscc).where(t.c.task_id == page.task_id).order_by(t.c.uscc).limit(page.limit)
        if page.after is not None:
            query = query.where(t.c.uscc > page.after)
        with self._engine.connect() as connection:
            return [r.uscc for r in connection.execute(query)]

    @activity.defn
    def finished_targets(self, targets: TaskTargets) -> TargetCounts:
        """How many of the task's targets are closed or cancelled, of how many (as a target's finish counts)."""
        with self._engine.connect() as connection:
            return target_counts(connection, targets.task_id)

    @activity.defn
    def cancel_unstarted(self, targets: TaskTargets) -> None:
        """A cancelled task's targets after the last one started never had a workflow: cancelled here."""
        assert targets.at
        t = schema.targets
        condition = open_targets(targets.task_id)
        if targets.after is not None:
            condition.append(t.c.uscc > targets.after)
        with self._engine.begin() as connection:
            connection.execute(update(t).where(*condition).values(stage=Stage.CANCELLED.value, updated_at=targets.at))

    @activity.defn
    def close_task(self, closing: TaskClosing) -> None:
        """Publish the close: the selected list becomes public now (draw-protocol.md), or the cancellation."""
        with self._engine.begin() as connection:
            line, year = task_line(connection, closing.task_id)
            selected = [r.uscc for r in connection.execute(
                select(schema.targets.c.uscc).where(schema.targets.c.task_id == closing.task_id,
                                                    schema.targets.c.kind == "random").order_by(schema.targets.c.uscc))]
            payload = {"task_id": closing.task_id, "task_code": line["task_code"],
                       "state": "cancelled" if closing.cancelled else "closed", "selected": selected}
            if closing.reason:
                payload["reason"] = closing.reason
            publish(connection, workflow_id=workflow_id(), step="close", kind="task", at=datetime.now(timezone.utc),
                    year=year, task_id=closing.task_id, unit=line["unit"], payload=payload)

    # --- helpers -----------------------------------------------------------------------------
    def _draw_key(self, step: TaskStep):
        return schema.draws.c.task_id == step.task_id, schema.draws.c.draw_seq == step.draw_seq

    def _draw_row(self, connection: Connection, step: TaskStep):
        row = one_by(connection, schema.draws, task_id=step.task_id, draw_seq=step.draw_seq)
        if row is None:
            raise not_found(f"announcement of task {step.task_id} draw {step.draw_seq}")
        return row


SYSTEM_APPROVER = "spotcheck"  # a redraw the rules forced, not a person's decision


def conflict_reason(conflicts: int) -> str:
    return f"R12/R14: {conflicts} selected entities were drawn by another task after this freeze"


def selections_this_year(year: int, other_than_task: str):
    """How often each entity was selected this plan year by drawn, not cancelled tasks other than this one."""
    return (
        select(dp.c.uscc, func.count().label("times"))
        .join(schema.draws, and_(schema.draws.c.task_id == dp.c.task_id, schema.draws.c.draw_seq == dp.c.draw_seq))
        .join(schema.plan_tasks, schema.plan_tasks.c.task_id == dp.c.task_id)
        .join(schema.plans, schema.plans.c.plan_code == schema.plan_tasks.c.plan_code)
        .where(dp.c.selected, schema.draws.c.state == "drawn", schema.plans.c.year == year,
               schema.plan_tasks.c.cancelled_at.is_(None), dp.c.task_id != other_than_task)
        .group_by(dp.c.uscc)
        .subquery()
    )


def lock_year(connection: Connection, year: int) -> None:
    """R12 across tasks: freezes, draws and supersessions of one plan year take turns, so each freeze sees
    every selection committed before its `frozen_at` and none after it."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(7233100 + year)))


def parse_pool(pool_file: str) -> list[dispatch_protocol.PoolInspector]:
    """The frozen pool file back into inspectors: dispatch uses the pool as frozen, never the live directory."""
    pool = []
    for line in pool_file.splitlines():
        inspector_id, status, expiry, qualifications, recusal = line.split("\t")
        pool.append(dispatch_protocol.PoolInspector(
            inspector_id=inspector_id, status=status, cert_expiry=date.fromisoformat(expiry),
            qualifications=tuple(split(qualifications)), recusal=tuple(split(recusal))))
    return pool
