"""The register's own workflows' activities: what a correction or a stop-publication acts on, its
publication (store.register.publish, idempotent per workflow and step) and its record."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from temporalio import activity

from activities.common import no_retry_cures, workflow_id
from db.engine import Engine
from domain import public
from domain.messages.public import Published, RegisterStep
from domain.workdays import SHANGHAI
from store.directory import people_with_role
from store.register import publish, record_decision, result_publication, update_decision

APPLICATION = "application"  # the stop-publication row's step; later steps update it


class RegisterActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn
    @no_retry_cures
    def published_result(self, step: RegisterStep) -> Published:
        """The target's result as published, with the supervisors of its unit; a refusal when there is none."""
        with self._engine.connect() as connection:
            row = result_publication(connection, step.task_id, step.uscc)
            if row is None:
                return Published(refusal=f"no published result of {step.uscc} in task {step.task_id} "
                                         "(never published, or withdrawn)")
            supervisors = people_with_role(connection, row["unit"], "supervisor", datetime.now(timezone.utc))
        return Published(publication_id=row["publication_id"], published_at=row["published_at"],
                         supervisors=supervisors)

    @activity.defn
    @no_retry_cures
    def publish_correction(self, step: RegisterStep) -> None:
        """The correction in the register beside the result it corrects, and its record (one transaction)."""
        run = step.correction
        assert run
        with self._engine.begin() as connection:
            original = result_publication(connection, step.task_id, step.uscc)
            assert original is not None, "validated by published_result"
            publish(connection, workflow_id=workflow_id(), step="correction", kind="correction", at=step.at,
                    year=original["year"], task_id=step.task_id, uscc=step.uscc,
                    category=run.category or original["category"], unit=original["unit"],
                    payload=public.correction(json.loads(original["payload"]), n=run.n,
                                              corrects=original["publication_id"],
                                              previous_category=original["category"], category_code=run.category,
                                              note=run.note, reason=run.reason,
                                              corrected_on=step.at.astimezone(SHANGHAI).date()))
            record_decision(connection, workflow_id=workflow_id(), step="correction", kind="correction",
                            task_id=step.task_id, uscc=step.uscc, requested_by=run.actor or run.approver,
                            requested_at=step.at, reason=run.reason, decision="approved", decided_by=run.approver,
                            decided_at=step.at, effective_at=step.at)

    @activity.defn
    @no_retry_cures
    def record_application(self, step: RegisterStep) -> None:
        """The application as it arrived, with its refusal when the province set no minimum period (R27)."""
        application = step.application
        assert application
        values = dict(kind="stop-publication", task_id=step.task_id, uscc=step.uscc,
                      requested_by=application.applicant, requested_at=step.at, reason=application.grounds,
                      eligible_from=step.eligible_from)
        if step.refusal is not None:
            values.update(decision="refused", decision_reason=step.refusal, decided_at=step.at)
        with self._engine.begin() as connection:
            record_decision(connection, workflow_id=workflow_id(), step=APPLICATION, **values)

    @activity.defn
    @no_retry_cures
    def record_stop_decision(self, step: RegisterStep) -> None:
        decision = step.decision
        assert decision
        with self._engine.begin() as connection:
            update_decision(connection, workflow_id=workflow_id(), step=APPLICATION,
                            decision="approved" if decision.approve else "rejected", decided_by=decision.decided_by,
                            decided_at=step.at, decision_reason=decision.reason or None)

    @activity.defn
    @no_retry_cures
    def withdraw_result(self, step: RegisterStep) -> None:
        """The result leaves the public pages (a withdrawal row); the register keeps the result itself."""
        assert step.decided_at and step.eligible_from
        with self._engine.begin() as connection:
            original = result_publication(connection, step.task_id, step.uscc)
            if original is not None:  # None: this step's first attempt committed it
                publish(connection, workflow_id=workflow_id(), step="withdrawal", kind="withdrawal", at=step.at,
                        year=original["year"], task_id=step.task_id, uscc=step.uscc, unit=original["unit"],
                        payload=public.withdrawal(task_id=step.task_id, uscc=step.uscc,
                                                  withdraws=original["publication_id"],
                                                  decided_on=step.decided_at.astimezone(SHANGHAI).date(),
                                                  eligible_from=step.eligible_from.astimezone(SHANGHAI).date()))
            update_decision(connection, workflow_id=workflow_id(), step=APPLICATION, effective_at=step.at)
