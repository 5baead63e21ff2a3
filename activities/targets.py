"""Target activities: load what the validators need, compute deadlines, project each human step."""
from __future__ import annotations

from datetime import date, datetime, timezone

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.common import found, no_retry_cures, not_found, workflow_id
from activities.handoff import Notifier
from db.engine import Engine
from domain import public
from domain.messages.base import REASON_CAP
from domain.messages.target import (
    TEAM_NOTICE,
    Alert,
    CheckRecorded,
    TargetContext,
    TargetStep,
    Withholding,
    substitution_notices,
    substitution_steps,
    team_notice,
)
from domain.messages.task import WaitDeadline, WaitFor, WorkingDaysLater
from domain.workdays import SHANGHAI, CalendarYearUnknown, Deadlines
from store import draws, targets
from store.directory import entity_name, entity_region, items_of, people_with_role, review_required, split, task_line
from store.register import publish, record_decision, update_decision

PUBLICATION_WORKING_DAYS = 20  # R21
REMINDER_WORKING_DAYS = 3
# Waits on people that the rules leave open [A]: a supervisor staffs a target the draw could not staff
# within 3 working days of its dispatch, and an announced entropy value (a public value published after
# the freeze) is entered within 5 working days of the freeze. A reminder comes one working day before.
WAIT_WORKING_DAYS = {"staffing": 3, "entropy": 5}
WAIT_REMINDER_WORKING_DAYS = 1


class TargetActivities:
    def __init__(self, engine: Engine, deadlines: Deadlines, notifier: Notifier) -> None:
        self._engine = engine
        self._deadlines = deadlines
        self._notifier = notifier

    @activity.defn
    @no_retry_cures
    def open_target(self, step: TargetStep) -> TargetContext:
        with found(), self._engine.begin() as connection:
            line, _ = task_line(connection, step.task_id)
            now = datetime.now(timezone.utc)
            frozen_at = draws.latest_frozen_at(connection, step.task_id)
            window_end = self._due(step.task_id, step.uscc, lambda: self._deadlines.window_end(
                date.fromisoformat(line["starts"]), date.fromisoformat(line["ends"]), frozen_at))
            reminder_at = self._due(step.task_id, step.uscc, lambda: self._deadlines.reminder_before(
                window_end, REMINDER_WORKING_DAYS))
            region = entity_region(connection, step.uscc, now)
            target = targets.target(connection, step.task_id, step.uscc)
            if region is None or target is None:
                raise not_found(f"target {step.uscc} of task {step.task_id}")
            teams, unstaffed = targets.current_teams(connection, step.task_id, step.uscc)
            unit = line["unit"]
            items = items_of(connection, line["items"], now)
            marked = public.items_withholding(line.get("withheld_items") or [], REASON_CAP)
            context = TargetContext(
                task_code=line["task_code"], unit=unit, region=region, kind=target.kind, teams=teams,
                unstaffed_units=unstaffed, reviewers=people_with_role(connection, unit, "reviewer", now),
                supervisors=people_with_role(connection, unit, "supervisor", now),
                review_required=review_required(connection, unit, now),
                methods=sorted({m for item in items for m in split(item["methods"])}),
                checklist=sorted({p for item in items for p in split(item["checklist"])}),
                reminder_at=reminder_at, window_end=window_end,
                withholding=Withholding(**marked) if marked else None,
                team_notified=step.notify_team and not unstaffed,
            )
            self._project(connection, step, stage="unstaffed" if unstaffed else "dispatched",
                          workflow_id=workflow_id())
            if context.team_notified:
                notice = team_notice(step.task_id, step.uscc, step.at, context.teams)
                self._record_alert(connection, notice)
        if context.team_notified:
            self._notifier.deliver(workflow_id(), notice.step)
        return context

    def _due(self, task_id: str, uscc: str | None, compute) -> datetime:
        """A deadline from the calendar; an unknown year alerts (its own transaction) and retries, never guesses."""
        try:
            return compute()
        except CalendarYearUnknown as unknown:
            with self._engine.begin() as alerting:
                targets.record_alert(alerting, workflow_id=workflow_id(), step=f"calendar-{unknown.year}",
                                     kind="calendar", task_id=task_id, uscc=uscc, at=datetime.now(timezone.utc),
                                     details=str(unknown))
            raise ApplicationError(str(unknown), type="CalendarYearUnknown") from unknown

    @activity.defn
    @no_retry_cures
    def working_days_later(self, request: WorkingDaysLater) -> datetime:
        """The instant `working_days` working days after `start`: the task's announcement and redraw windows."""
        return self._due(request.task_id, request.uscc, lambda: self._deadlines.after_working_days(
            request.start, request.working_days))

    @activity.defn
    @no_retry_cures
    def wait_deadline(self, wait: WaitFor) -> WaitDeadline:
        """The deadline of a wait on people, never after `not_after`, and the supervisors to alert."""
        due = self._due(wait.task_id, wait.uscc, lambda: self._deadlines.after_working_days(
            wait.start, WAIT_WORKING_DAYS[wait.wait]))
        if wait.not_after is not None:
            due = min(due, wait.not_after)
        reminder = self._due(wait.task_id, wait.uscc, lambda: self._deadlines.reminder_before(
            due, WAIT_REMINDER_WORKING_DAYS))
        with found(), self._engine.begin() as connection:
            line, _ = task_line(connection, wait.task_id)
            supervisors = people_with_role(connection, line["unit"], "supervisor", datetime.now(timezone.utc))
        return WaitDeadline(reminder_at=min(reminder, due), due_at=due, supervisors=supervisors)

    @activity.defn
    @no_retry_cures
    def record_check(self, step: TargetStep) -> CheckRecorded:
        assert step.check
        with self._engine.begin() as connection:
            due = self._due(step.task_id, step.uscc, lambda: self._deadlines.after_working_days(
                step.at, PUBLICATION_WORKING_DAYS))
            reminder = self._due(step.task_id, step.uscc, lambda: self._deadlines.reminder_before(due, REMINDER_WORKING_DAYS))
            self._project(connection, step, stage="checked", check_date=step.at.astimezone(SHANGHAI).date(),
                          method=step.check.method, publication_due=due)
        return CheckRecorded(publication_due=due, reminder_at=reminder)

    @activity.defn
    @no_retry_cures
    def record_result(self, step: TargetStep) -> None:
        assert step.result
        with self._engine.begin() as connection:
            self._project(connection, step, stage=step.stage.value if step.stage else "entered",
                          category=step.result.category, entered_by=step.result.inspector)

    @activity.defn
    @no_retry_cures
    def record_review(self, step: TargetStep) -> None:
        assert step.review
        with self._engine.begin() as connection:
            if step.review.approve:
                self._project(connection, step, stage="approved", reviewed_by=step.review.reviewer)
            else:
                self._project(connection, step, stage="checked", category=None, entered_by=None)

    @activity.defn
    @no_retry_cures
    def record_team(self, step: TargetStep) -> None:
        assignment = step.assignment
        assert assignment
        with self._engine.begin() as connection:
            recorded = targets.team_recorded(connection, workflow_id=workflow_id(), step=step.step, uscc=step.uscc,
                                             unit=assignment.unit)
            before = {t.unit: t.inspectors for t in targets.current_teams(connection, step.task_id, step.uscc)[0]}
            targets.assign_team(connection, task_id=step.task_id, uscc=step.uscc, unit=assignment.unit,
                                inspectors=assignment.inspectors, reason=assignment.reason, by=assignment.by,
                                at=step.at, workflow_id=workflow_id(), step=step.step)
            if not targets.current_teams(connection, step.task_id, step.uscc)[1]:  # every unit staffed now
                targets.staffed(connection, step.task_id, step.uscc, step.at)
            # A team already told of the target hears of the substitution; one not yet told hears of the whole
            # team once every unit is staffed (the workflow's notice). Decided once: a retry after the commit
            # finds the assignment recorded and only delivers what the first attempt wrote.
            if not recorded and targets.alerted(connection, step.task_id, step.uscc, TEAM_NOTICE):
                for notice in substitution_notices(step.task_id, step.uscc, step.at, step.step,
                                                   before.get(assignment.unit, []), assignment.inspectors):
                    self._record_alert(connection, notice)
            written = [s for s in substitution_steps(step.step) if targets.alerted(connection, step.task_id,
                                                                                  step.uscc, s)]
        for notice_step in written:
            self._notifier.deliver(workflow_id(), notice_step)

    @activity.defn
    @no_retry_cures
    def record_stage(self, step: TargetStep) -> None:
        assert step.stage
        with self._engine.begin() as connection:
            self._project(connection, step, stage=step.stage.value)

    @activity.defn
    @no_retry_cures
    def finish(self, step: TargetStep) -> bool:
        """The target's final stage (closed or cancelled); True when no target of its task is left open.

        Only that last target signals the task, which counts its targets here: a signal per target would
        fill the task's history, and a burst of them (a deadline shared by thousands of targets) keeps it
        from continuing as new. Finishes of one task take turns on the task's row, so exactly one of them
        sees none left; a retry after the commit answers the same."""
        assert step.stage in targets.FINAL_STAGES
        with self._engine.begin() as connection:
            self._project(connection, step, stage=step.stage.value)  # first: on SQLite the write lock comes here
            return targets.none_open(connection, step.task_id)

    @activity.defn
    @no_retry_cures
    def publish_result(self, step: TargetStep) -> None:
        """The result in the public register: task, entity, category, date, unit; no inspector's data (R23)."""
        with found(), self._engine.begin() as connection:
            line, year = task_line(connection, step.task_id)
            target = targets.target(connection, step.task_id, step.uscc)
            if target is None or target.category is None:
                raise not_found(f"entered result of {step.uscc} in task {step.task_id}")
            name = entity_name(connection, step.uscc)
            payload = public.result(step.task_id, line, step.uscc, name, target)
            if step.withholding is not None:  # marked and approved (R23)
                payload = public.withheld(payload, step.withholding.fields, step.withholding.grounds)
            # Never before the workflow's own time (time-skipping tests run the workflow clock ahead).
            now = max(step.at, datetime.now(timezone.utc))
            on_time = step.due_at is None or now <= step.due_at
            inserted = publish(
                connection, workflow_id=workflow_id(), step="publish-result", kind="result", at=now,
                year=target.check_date.year, task_id=step.task_id, uscc=step.uscc, category=target.category,
                unit=line["unit"], due_at=step.due_at, on_time=on_time,
                payload=payload)
            if inserted:
                self._project(connection, step, stage="published", published_at=now,
                              overdue=target.overdue or not on_time)

    @activity.defn
    @no_retry_cures
    def record_withholding(self, step: TargetStep) -> None:
        """A result marked for withholding (R23), then its decision: one register_decisions row, updated."""
        marked, decision = step.withholding, step.withholding_decision
        assert marked
        with self._engine.begin() as connection:
            if decision is None:
                record_decision(connection, workflow_id=workflow_id(), step="withholding", kind="withholding",
                                task_id=step.task_id, uscc=step.uscc, requested_by=marked.marked_by,
                                requested_at=step.at,
                                reason=f"{marked.grounds}: {', '.join(marked.fields)}: {marked.reason}")
            else:
                update_decision(connection, workflow_id=workflow_id(), step="withholding",
                                decision="approved" if decision.approve else "rejected", decided_by=decision.approver,
                                decided_at=step.at, decision_reason=decision.note or None)

    @activity.defn
    @no_retry_cures
    def alert(self, alert: Alert) -> None:
        """A reminder, an escalation or a notice: recorded, then sent through the outbox."""
        with self._engine.begin() as connection:
            self._record_alert(connection, alert)
        self._notifier.deliver(workflow_id(), alert.step)

    def _record_alert(self, connection, alert: Alert) -> None:
        targets.record_alert(connection, workflow_id=workflow_id(), step=alert.step, kind=alert.kind,
                             task_id=alert.task_id, uscc=alert.uscc, at=alert.at, details=alert.details)
        if alert.kind == "escalation" and alert.uscc:
            self._project(connection, TargetStep(task_id=alert.task_id, uscc=alert.uscc, step=alert.step,
                                                 at=alert.at), overdue=True)
        self._notifier.enqueue(connection, workflow_id(), alert.step, "notification",
                               {"kind": alert.kind, "task_id": alert.task_id, "uscc": alert.uscc,
                                "to": alert.notify, "text": alert.details})

    def _project(self, connection, step: TargetStep, **values) -> None:
        targets.project(connection, step.task_id, step.uscc, step.at, **values)

