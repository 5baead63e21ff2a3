"""Draw activities: announce, freeze, draw, dispatch (draw-protocol.md), and the task's paging and close.

Freeze, draw and dispatch run on the heavy task queue in their own process, heartbeating: a retry
resumes from what an earlier attempt committed (the freeze's instant and salt, the stored selection,
the dispatch's pages), and a retry after the last commit returns the stored result. Secrets (the
nonce before its reveal, the population salt) live only here, in the database, never in a payload.
"""
from __future__ import annotations

import contextvars
import json
import secrets
import threading
from contextlib import contextmanager
from datetime import date, datetime, timezone

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.common import found, no_retry_cures, not_found, workflow_id
from db.engine import Engine
from domain import dispatch as dispatch_protocol
from domain import draw as draw_protocol
from domain import public
from domain.messages.task import (
    Announcement,
    DispatchSummary,
    DrawSummary,
    FreezeSummary,
    TargetCounts,
    TargetedStep,
    TargetsPage,
    TaskClosing,
    TaskStep,
    TaskTargets,
)
from domain.workdays import SHANGHAI
from store import draws, targets
from store.directory import entity_name, inspectors_of, items_of, split, task_line
from store.register import publish

BEAT_SECONDS = 10.0  # heartbeats while one long statement runs, well inside the heavy queue's heartbeat timeout


class DrawActivities:
    def __init__(self, engine: Engine, lines_per_block: int = draws.LINES_PER_BLOCK,
                 rows_per_page: int = draws.ROWS_PER_PAGE, in_database: bool | None = None,
                 beat_seconds: float = BEAT_SECONDS) -> None:
        self._engine = engine
        # Population lines per heartbeat, selected rows per statement: small in tests, to see many of both.
        self.lines_per_block, self.rows_per_page = lines_per_block, rows_per_page
        # The draw's digest and keys computed by the database (default: wherever it can, PostgreSQL), or
        # the population streamed through domain.draw (SQLite, and a test comparing the two).
        self.in_database = draws.in_database(engine) if in_database is None else in_database
        self.beat_seconds = beat_seconds

    # --- announce (light) --------------------------------------------------------------------
    @activity.defn
    @no_retry_cures
    def announce(self, step: TaskStep) -> Announcement:
        with found(), self._engine.begin() as connection:
            line, year = task_line(connection, step.task_id)
            nonce = secrets.token_bytes(32)  # made once: a retry finds the stored row
            stored = draws.announce(
                connection, task_id=step.task_id, draw_seq=step.draw_seq, commitment=draw_protocol.commitment(nonce),
                nonce=nonce, entropy_source=line["entropy_source"], reason=step.reason, approver=step.approver,
                workflow_id=workflow_id(), step=f"announce-{step.draw_seq}")
            publish(connection, workflow_id=workflow_id(), step=f"announce-{step.draw_seq}", kind="task",
                    at=datetime.now(timezone.utc), year=year, task_id=step.task_id, unit=line["unit"],
                    payload=public.task_announced(step.task_id, line, step.draw_seq, stored))
        return Announcement(commitment=stored.commitment, entropy_source=stored.entropy_source)

    # --- freeze (heavy) ----------------------------------------------------------------------
    @activity.defn
    @no_retry_cures
    def freeze(self, step: TaskStep) -> FreezeSummary:
        """Fix the instant and the salt (first attempt only), digest the population as of then, publish.

        Nothing of the population is stored. The database digests and counts it (PostgreSQL), or it
        streams once, in byte order, through domain.draw's digest. A retry finds the instant and salt
        of the first attempt and recomputes the same digest.
        """
        with found(), self._engine.begin() as connection:
            draw = draws.draw(connection, step.task_id, step.draw_seq)
            if draw.state != "announced":
                return FreezeSummary.model_validate(json.loads(draw.record)["freeze"])
            line, year = task_line(connection, step.task_id)
            if draw.frozen_at is None:
                # Under the year's lock: every selection committed before this instant is counted as of
                # it, and every later draw gets a later drawn_at (R12, R14).
                draws.lock_year(connection, year)
                draws.fix_freeze(connection, step.task_id, step.draw_seq, datetime.now(timezone.utc),
                                 secrets.token_bytes(32).hex())
        with found(), self._engine.connect() as connection:
            draw = draws.draw(connection, step.task_id, step.draw_seq)
            frozen_at, salt = draw.frozen_at, bytes.fromhex(draw.population_salt)
            with self.beating(step="count"):
                strata, exclusions = draws.tally(connection, step.task_id, line, year, frozen_at)
            if self.in_database:
                with self.beating(step="digest"):
                    digest = draws.population_digest(connection, draw, salt)
            else:
                streamed = draw_protocol.PopulationDigest(salt)
                self._stream(connection, draw, "freeze", streamed.add_lines)
                digest, strata = streamed.hexdigest(), streamed.counts
        with found(), self._engine.begin() as connection:
            self._freeze_pools(connection, step.task_id, line, frozen_at)
            summary = FreezeSummary(frozen_at=frozen_at, population=sum(strata.values()),
                                    strata=draw_protocol.checked_strata(strata), exclusions=exclusions,
                                    population_digest=digest)
            draws.save(connection, step.task_id, step.draw_seq, record={"freeze": summary.model_dump(mode="json")},
                       state="frozen")
            publish(connection, workflow_id=workflow_id(), step=f"freeze-{step.draw_seq}", kind="draw",
                    at=frozen_at, year=year, task_id=step.task_id, unit=line["unit"],
                    payload=public.frozen(step.task_id, step.draw_seq, summary))
        return summary

    def _stream(self, connection, draw, what: str, *consumers) -> int:
        """The draw's population, streamed once in byte order through `consumers`, a heartbeat per block."""
        done = 0

        def block(lines: bytes) -> None:
            nonlocal done
            for consume in consumers:
                consume(lines)
            done += lines.count(b"\n")
            activity.heartbeat({"step": what, "rows": done})

        return draws.population_lines(connection, draw, block, self.lines_per_block)

    @contextmanager
    def beating(self, **details):
        """A heartbeat (`details`) every `beat_seconds` while one long step runs: a statement, or a computation,
        that gives no blocks to beat on."""
        done = threading.Event()
        context = contextvars.copy_context()  # the activity's context, for heartbeats from another thread

        def beat() -> None:
            while not done.wait(self.beat_seconds):
                context.run(activity.heartbeat, details)

        beating = threading.Thread(target=beat, name=f"heartbeat-{details.get('step')}", daemon=True)
        beating.start()
        try:
            yield
        finally:
            done.set()
            beating.join()

    def _freeze_pools(self, connection, task_id: str, line: dict, frozen_at: datetime) -> None:
        """Freeze each dispatching unit's inspector pool before the entropy is revealed (sc-dispatch-v1 §1)."""
        for unit in [line["unit"], *line.get("partner_units", [])]:
            pool = dispatch_protocol.pool_file(
                dispatch_protocol.PoolInspector(
                    inspector_id=r["inspector_id"], status=r["status"], cert_expiry=r["cert_expiry"],
                    qualifications=tuple(split(r["qualifications"])), recusal=tuple(split(r["recusal"])))
                for r in inspectors_of(connection, unit, frozen_at)
            )
            draws.save_pool(connection, task_id=task_id, unit=unit, pool_digest=dispatch_protocol.pool_digest(pool),
                            pool_file=pool, team_size=int(line["team_size"]), load_cap=int(line["load_cap"]),
                            frozen_at=frozen_at)

    # --- draw (heavy) ------------------------------------------------------------------------
    @activity.defn
    @no_retry_cures
    def draw(self, step: TaskStep) -> DrawSummary:
        """Select from the population as of the freeze, store the selection, then record and publish the draw.

        The population streams once, in byte order, through the selection and the digest again: a
        population that no longer hashes to the published digest is refused, never drawn from. The
        selection is stored in its own transaction: a retry after it resumes from the stored rows.
        """
        with found(), self._engine.connect() as connection:
            draw = draws.draw(connection, step.task_id, step.draw_seq)
            if draw.state in ("drawn", "superseded"):
                return DrawSummary.model_validate(json.loads(draw.record)["summary"])
            if draw.state != "frozen":
                raise not_found(f"frozen population of task {step.task_id} draw {step.draw_seq}")
            line, year = task_line(connection, step.task_id)
            freeze = json.loads(draw.record)["freeze"]
            strata = draw_protocol.plan_strata(freeze["strata"], line["ratios"])
            nonce = bytes.fromhex(draw.nonce)
            seed = draw_protocol.draw_seed(step.task_id, freeze["population_digest"], nonce, step.entropy)
            chosen = draws.selection(connection, step.task_id, step.draw_seq)
            fresh = not chosen
            if fresh:
                chosen = self._select(connection, draw, freeze, seed, strata)
        if fresh:
            with self._engine.begin() as connection:
                draws.save_selection(connection, step.task_id, step.draw_seq, chosen,
                                     lambda n: activity.heartbeat({"step": "selection", "rows": n}),
                                     self.rows_per_page)
        selected = [uscc for uscc, _ in chosen]
        with found(), self._engine.begin() as connection:
            draws.lock_year(connection, year)
            conflicts = draws.conflicts(connection, step.task_id, step.draw_seq, year, int(line["frequency_cap"]))
            drawn_at = datetime.now(timezone.utc)
            refused = draws.refused_targeted(connection, step.task_id, line, year, draw.frozen_at)
            self._refused(connection, step, refused, drawn_at)
            targeted = 0 if conflicts else targets.add_drawn(connection, step.task_id, selected, drawn_at, refused)
            summary = DrawSummary(seed=seed.hex(), selected=len(selected), targeted=targeted,
                                  strata={s: p.quota for s, p in strata.items()},
                                  selection_digest=draw_protocol.selection_digest(selected), conflicts=conflicts)
            record = draw_protocol.public_record(
                task_id=step.task_id, task_code=line["task_code"], draw_seq=step.draw_seq, reason=draw.reason,
                approver=draw.approver, freeze=freeze, strata=strata, commitment=draw.commitment,
                entropy_source=draw.entropy_source, entropy=step.entropy, nonce=draw.nonce, seed=summary.seed,
                selection_digest=summary.selection_digest)
            draws.save(connection, step.task_id, step.draw_seq,
                       record={"freeze": freeze, "summary": summary.model_dump(mode="json"), "public": record},
                       state="superseded" if conflicts else "drawn", entropy=step.entropy, drawn_at=drawn_at)
            publish(connection, workflow_id=workflow_id(), step=f"draw-{step.draw_seq}", kind="draw", at=drawn_at,
                    year=year, task_id=step.task_id, unit=line["unit"], payload=record)
            if conflicts:
                publish(connection, workflow_id=workflow_id(), step=f"supersede-{step.draw_seq}", kind="draw",
                        at=drawn_at, year=year, task_id=step.task_id, unit=line["unit"],
                        payload=public.superseded(step.task_id, step.draw_seq, conflict_reason(conflicts),
                                                  SYSTEM_APPROVER))
        return summary

    @staticmethod
    def _refused(connection, step: TaskStep, refused: dict[str, str], at: datetime) -> None:
        """An alert per targeted entity the freeze excluded for want of a legal basis (R12, R14): not inspected."""
        for uscc, reason in refused.items():
            targets.record_alert(
                connection, workflow_id=workflow_id(), step=f"refused-{step.draw_seq}-{uscc}", kind="refused",
                task_id=step.task_id, uscc=uscc, at=at,
                details=f"targeted entity {uscc} is not inspected: another task drew it before the freeze, and "
                        f"{CAP_RULES[reason]} excludes it without a legal basis (draw target --legal-basis)")

    def _select(self, connection, draw, freeze: dict, seed: bytes, strata: dict) -> list[tuple[str, str]]:
        """The selection from the population as of the freeze, refused if that no longer hashes to its digest.

        In the database (PostgreSQL): the digest, then the keys ranked, two statements during which only
        heartbeats leave; else the population streamed once through domain.draw's digest and selection.
        """
        salt, quotas = bytes.fromhex(draw.population_salt), {s: p.quota for s, p in strata.items()}
        if self.in_database:
            with self.beating(step="digest"):
                digest = draws.population_digest(connection, draw, salt)
            self._refuse_changed(draw, freeze, digest)
            with self.beating(step="keys"):
                return draws.select_in_database(connection, draw, seed, quotas, freeze["strata"])
        streamed = draw_protocol.PopulationDigest(salt)
        selection = draw_protocol.Selection(seed, quotas)
        self._stream(connection, draw, "draw", streamed.add_lines, selection.add_lines)
        self._refuse_changed(draw, freeze, streamed.hexdigest(), streamed.counts)
        return selection.selected()

    @staticmethod
    def _refuse_changed(draw, freeze: dict, digest: str, counts: dict | None = None) -> None:
        """A population that no longer hashes to the published digest is never drawn from (the strata
        counts, when streamed, are compared too; the digest covers them)."""
        if digest != freeze["population_digest"] or (counts is not None and counts != freeze["strata"]):
            raise ApplicationError(
                f"task {draw.task_id} draw {draw.draw_seq}: the population as of {freeze['frozen_at']} no longer "
                f"hashes to the published digest ({digest}, published {freeze['population_digest']}); "
                "not drawn", non_retryable=True)

    # --- dispatch (heavy) --------------------------------------------------------------------
    @activity.defn
    @no_retry_cures
    def dispatch(self, step: TaskStep) -> DispatchSummary:
        """Staff every target (sc-dispatch-v1), its rows stored page by page, a heartbeat per page.

        The first attempt fixes the day and qualifications the teams are judged by and marks the dispatch
        pending; a retry recomputes the same teams from them and stores only the rows after those already
        committed (each unit's rows go in in draw order, a page per transaction). The mark goes with the
        last page, leaving the record as a dispatch in one transaction left it."""
        with found(), self._engine.begin() as connection:
            record = json.loads(draws.draw(connection, step.task_id, step.draw_seq).record)
            counts = draws.dispatched(connection, step.task_id)
            if counts is not None and "dispatch_pending" not in record:
                return DispatchSummary(teams=counts.get("draw", 0), unstaffed=counts.get("unstaffed", 0))
            line, _ = task_line(connection, step.task_id)
            if "dispatch_as_of" not in record:
                now = datetime.now(timezone.utc)
                record = {**record, "dispatch_as_of": datetime.now(SHANGHAI).date().isoformat(),
                          "required_qualifications": sorted({item["qualification"]
                                                             for item in items_of(connection, line["items"], now)}),
                          "dispatch_pending": {"at": now.isoformat()}}
                draws.save(connection, step.task_id, step.draw_seq, record=record)
            pools = draws.pools(connection, step.task_id)
        seed = bytes.fromhex(record["summary"]["seed"])
        # A record with the day but no rows and no mark: the projection rebuild's fresh schema (read/projection.py)
        as_of = date.fromisoformat(record["dispatch_as_of"])
        at = datetime.fromisoformat(record["dispatch_pending"]["at"]) if "dispatch_pending" in record \
            else datetime.now(timezone.utc)
        usccs = self._targets(step.task_id)
        teams = unstaffed = 0
        for pool in pools:
            # One pure step over all of the task's targets (the draw order of 120,000: about 20 s on the
            # loaded 2-core machine, longer with a larger pool): heartbeats while it runs.
            with self.beating(step="dispatch", unit=pool["unit_code"], computing=len(usccs)):
                outcome = dispatch_protocol.dispatch(
                    dispatch_protocol.dispatch_seed(seed, pool["unit_code"], pool["pool_digest"], pool["team_size"],
                                                    pool["load_cap"]),
                    usccs, parse_pool(pool["pool_file"]), record["required_qualifications"], pool["team_size"],
                    pool["load_cap"], as_of,
                )
            teams += len(outcome.teams)
            unstaffed += len(outcome.unstaffed)
            with self._engine.connect() as connection:
                done = targets.dispatched_rows(connection, step.task_id, pool["unit_code"])
            for start in range(done, len(outcome.order), self.rows_per_page):
                page = outcome.order[start:start + self.rows_per_page]
                with self._engine.begin() as connection:
                    draws.save_dispatch(connection, step.task_id, (
                        (uscc, pool["unit_code"], outcome.teams.get(uscc), outcome.unstaffed.get(uscc))
                        for uscc in page), at, workflow_id())
                activity.heartbeat({"step": "dispatch", "unit": pool["unit_code"], "rows": start + len(page)})
        with found(), self._engine.begin() as connection:
            record.pop("dispatch_pending", None)
            draws.save(connection, step.task_id, step.draw_seq, record=record)
        return DispatchSummary(teams=teams, unstaffed=unstaffed)

    def _targets(self, task_id: str) -> list[str]:
        """The task's targets, read a page at a time (a heartbeat each): the draw order is over all of them."""
        usccs: list[str] = []
        while page := self._page(task_id, usccs[-1] if usccs else None):
            usccs += page
            activity.heartbeat({"step": "dispatch", "targets": len(usccs)})
        return usccs

    def _page(self, task_id: str, after: str | None) -> list[str]:
        with self._engine.connect() as connection:
            return targets.page(connection, task_id, after, self.rows_per_page)

    # --- targeted entities and redraws (light) --------------------------------------------------
    @activity.defn
    @no_retry_cures
    def record_targeted(self, step: TargetedStep) -> None:
        """A targeted entity, recorded before the freeze; the freeze keeps it in the population.

        One the frequency cap excludes (R12, R14) is inspected again only when a law requires it: refused
        without the legal basis, kept in the population with it. Under the year's lock, as a freeze is.
        """
        with found(), self._engine.begin() as connection:
            if not entity_name(connection, step.uscc):
                raise not_found(f"entity {step.uscc} in the directory")
            if not step.legal_basis:
                _, year = task_line(connection, step.task_id)
                draws.lock_year(connection, year)
                excluded = draws.cap_exclusion(connection, step.task_id, step.uscc, step.at)
                if excluded:
                    raise ApplicationError(
                        f"entity {step.uscc} is excluded from task {step.task_id} by {CAP_RULES[excluded]}: it is "
                        "inspected again only where a law, regulation or rule requires it, with that legal basis "
                        "recorded (--legal-basis)", type="Refused", non_retryable=True)
            draws.record_targeted(connection, step.task_id, step.uscc, step.reason, step.at, step.legal_basis)

    @activity.defn
    @no_retry_cures
    def supersede_draw(self, step: TaskStep) -> None:
        """Before dispatch only: the draw stays on record, published as superseded; its un-started targets go."""
        with found(), self._engine.begin() as connection:
            line, year = task_line(connection, step.task_id)
            draws.lock_year(connection, year)
            draws.supersede(connection, step.task_id, step.draw_seq)
            targets.remove_unstarted(connection, step.task_id)
            publish(connection, workflow_id=workflow_id(), step=f"supersede-{step.draw_seq}", kind="draw",
                    at=datetime.now(timezone.utc), year=year, task_id=step.task_id, unit=line["unit"],
                    payload=public.superseded(step.task_id, step.draw_seq, step.reason, step.approver))

    # --- paging and closing (light) -----------------------------------------------------------
    @activity.defn
    @no_retry_cures
    def targets_page(self, page: TargetsPage) -> list[str]:
        with self._engine.connect() as connection:
            return targets.page(connection, page.task_id, page.after, page.limit)

    @activity.defn
    @no_retry_cures
    def finished_targets(self, task: TaskTargets) -> TargetCounts:
        """How many of the task's targets are closed or cancelled, of how many (as a target's finish counts)."""
        with self._engine.connect() as connection:
            return targets.counts(connection, task.task_id)

    @activity.defn
    @no_retry_cures
    def cancel_unstarted(self, task: TaskTargets) -> None:
        """A cancelled task's targets after the last one started never had a workflow: cancelled here."""
        assert task.at
        with self._engine.begin() as connection:
            targets.cancel_open(connection, task.task_id, task.after, task.at)

    @activity.defn
    @no_retry_cures
    def close_task(self, closing: TaskClosing) -> None:
        """Publish the close: the selected list becomes public now (draw-protocol.md), or the cancellation."""
        with found(), self._engine.begin() as connection:
            line, year = task_line(connection, closing.task_id)
            selected = targets.randomly_selected(connection, closing.task_id)
            publish(connection, workflow_id=workflow_id(), step="close", kind="task", at=datetime.now(timezone.utc),
                    year=year, task_id=closing.task_id, unit=line["unit"],
                    payload=public.task_closed(closing.task_id, line, selected, closing.cancelled, closing.reason))


# How a refusal names the rule behind each exclusion a legal basis lifts (store.draws.CAP_REASONS).
CAP_RULES = {"a_class_already_drawn": "R12 (an A-class entity another task already drew this year)",
             "frequency_cap": "R14 (the year's frequency cap of selections)"}


SYSTEM_APPROVER = "spotcheck"  # a redraw the rules forced, not a person's decision


def conflict_reason(conflicts: int) -> str:
    return f"R12/R14: {conflicts} selected entities were drawn by another task after this freeze"


def parse_pool(pool_file: str) -> list[dispatch_protocol.PoolInspector]:
    """The frozen pool file back into inspectors: dispatch uses the pool as frozen, never the live directory."""
    pool = []
    for line in pool_file.splitlines():
        inspector_id, status, expiry, qualifications, recusal = line.split("\t")
        pool.append(dispatch_protocol.PoolInspector(
            inspector_id=inspector_id, status=status, cert_expiry=date.fromisoformat(expiry),
            qualifications=tuple(split(qualifications)), recusal=tuple(split(recusal))))
    return pool
