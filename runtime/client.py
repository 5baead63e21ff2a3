"""Clients and workers, always with the pydantic data converter."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.archive import ArchiveActivities
from activities.draws import DrawActivities
from activities.handoff import HandoffActivities, JsonlReceiver, Notifier, Receiver, WebhookReceiver
from activities.launcher import LauncherActivities
from activities.plans import PlanActivities
from activities.public_register import RegisterActivities
from activities.starts import StartActivities
from activities.targets import TargetActivities
from db.engine import Engine
from domain.workdays import Deadlines, calendar_from_env
from runtime.codec import data_converter
from runtime.config import Settings, TemporalAccess
from runtime.logs import LoggingInterceptor
from runtime.telemetry import RefusalMetrics
from workflows.archiver import HistoryArchiverWorkflow
from workflows.common import HEAVY_TASK_QUEUE, TASK_QUEUE
from workflows.correction import CorrectionWorkflow
from workflows.launcher import PlanLauncherWorkflow
from workflows.plan import AnnualPlanWorkflow
from workflows.stop_publication import StopPublicationWorkflow
from workflows.target import TargetInspectionWorkflow
from workflows.task import InspectionTaskWorkflow

WORKFLOWS = [PlanLauncherWorkflow, AnnualPlanWorkflow, InspectionTaskWorkflow, TargetInspectionWorkflow,
             HistoryArchiverWorkflow, CorrectionWorkflow, StopPublicationWorkflow]


def tls_config(access: TemporalAccess) -> TLSConfig | bool:
    """The TLS of a secured cluster (the files read now, so a missing one is named at connect); False: none."""
    if not access.tls:
        return False
    return TLSConfig(
        server_root_ca_cert=access.tls_ca.read_bytes() if access.tls_ca else None,  # None: the system's roots
        client_cert=access.tls_cert.read_bytes() if access.tls_cert else None,
        client_private_key=access.tls_key.read_bytes() if access.tls_key else None,
        domain=access.tls_server_name)


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    # pydantic_data_converter, encrypting when SPOTCHECK_CODEC_KEYS is set (runtime/codec.py); a worker
    # passes the runtime that exports its metrics (runtime/telemetry.py)
    return await Client.connect(settings.temporal_address, namespace=settings.namespace,
                                data_converter=data_converter(settings), runtime=runtime,
                                tls=tls_config(settings.temporal), api_key=settings.temporal.api_key)


def receiver_for(settings: Settings) -> Receiver:
    return WebhookReceiver(settings.handoff_url) if settings.handoff_url else JsonlReceiver(settings.outbox_file)


STRICT_SANDBOX = "SPOTCHECK_STRICT_SANDBOX"


def workflow_runners() -> dict:
    """The target workflow runs outside the sandbox (workflows/target.py says why); with
    SPOTCHECK_STRICT_SANDBOX=1, which the tests set, inside it like the others, so that a read of the
    clock, random or I/O in its code fails the tests."""
    if os.environ.get(STRICT_SANDBOX) == "1":
        return {"unsandboxed_workflow_runner": SandboxedWorkflowRunner()}
    return {}


def build_worker(client: Client, queue: str, engine: Engine, deadlines: Deadlines, receiver: Receiver,
                 executor: ThreadPoolExecutor, **options) -> Worker:
    """The worker of one task queue: workflows and light activities, or the heavy draw activities."""
    draws = DrawActivities(engine)
    if queue == HEAVY_TASK_QUEUE:
        return Worker(client, task_queue=queue, activities=[draws.freeze, draws.draw, draws.dispatch],
                      activity_executor=executor, max_concurrent_activities=2,
                      interceptors=[LoggingInterceptor()], **options)
    notifier = Notifier(engine, receiver)
    plans = PlanActivities(engine)
    launcher = LauncherActivities(engine)
    targets = TargetActivities(engine, deadlines, notifier)
    handoff = HandoffActivities(engine, deadlines, notifier)
    archive = ArchiveActivities(engine, client)  # lists and fetches histories with the worker's client
    register = RegisterActivities(engine)
    starts = StartActivities(engine, client)  # starts target workflows with the worker's client
    activities = [
        plans.publish_plan, plans.publish_adjustment, launcher.load_plan_template,
        draws.announce, draws.targets_page, draws.finished_targets, draws.cancel_unstarted, draws.close_task,
        draws.record_targeted, draws.supersede_draw, starts.start_targets,
        targets.working_days_later, targets.wait_deadline, targets.open_target, targets.record_check,
        targets.record_result, targets.record_review,
        targets.record_team, targets.record_stage, targets.finish, targets.publish_result, targets.alert,
        targets.record_withholding,
        handoff.open_follow_up, handoff.deliver, handoff.close_follow_up,
        archive.archive_closed,
        register.published_result, register.publish_correction, register.record_application,
        register.record_stop_decision, register.withdraw_result,
    ]
    return Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=activities,
                  activity_executor=executor, interceptors=[LoggingInterceptor(), RefusalMetrics()],
                  **workflow_runners() | options)


def deadlines_for(settings: Settings) -> Deadlines:
    return Deadlines(calendar_from_env(), workday_seconds=settings.workday_seconds)


__all__ = ["connect", "build_worker", "deadlines_for", "receiver_for", "TASK_QUEUE", "HEAVY_TASK_QUEUE"]
