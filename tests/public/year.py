"""A published year in a fresh database, written as the activities write it: every register payload
through its domain.public builder and store.register.publish (which runs domain.public.check), the
follow-ups through store.outbox. Beside it, the internal data a public page must never show: the
inspectors directory, entities with their risk classes, teams, who entered and reviewed each result,
the population salts, and the nonce of a draw not yet revealed.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import insert, select

from db import schema
from domain import draw, public
from domain.messages.plan import Adjustment
from domain.messages.task import FreezeSummary
from domain.uscc import make_uscc
from store.draws import announce
from store.outbox import open_follow_up
from store.register import publish

YEAR = 2025
PLAN = "JDZ-2025"
UNIT = "360202-SCJ"
OWNER = "360200-SCJ"
PARTNER = "360200-XF"  # a partner from another department: not in the directory's units
# The directory's units: the older name of the owner was replaced; pages show each unit's newest name.
UNIT_NAMES = {UNIT: "景德镇市昌江区市场监督管理局", OWNER: "景德镇市市场监督管理局"}
OLD_OWNER_NAME = "景德镇市工商行政管理局"
T1, T2 = "JDZ-2025-0001", "JDZ-2025-0002"
AT = datetime(2025, 3, 1, 1, 0, tzinfo=timezone.utc)
INSPECTORS = {"JDZ-I001": "周平建", "JDZ-I002": "唐桂娜", "JDZ-I003": "欧阳秀英", "JDZ-I004": "司马建国"}
RATIOS = {"A": "0.2", "B": "0.3", "C": "0.5", "D": "1", "U": "0"}
LEGAL_BASIS = "《企业信息公示暂行条例》第十四条；《市场监督管理行政执法责任制规定》"
ENTITY_NAMES = ["景德镇市瓷都陶瓷有限公司", "昌江区福来食品店", "景德镇鑫源建材有限公司", "昌南新区青花餐饮店"]


def line(task_id: str, code: str, name: str) -> dict:
    return {"task_id": task_id, "task_code": code, "name": name, "items": ["GS-001"], "unit": UNIT,
            "partner_units": [PARTNER] if task_id == T1 else [], "ratios": RATIOS, "starts": "2025-04-01", "ends": "2025-06-30"}


@dataclass
class Year:
    """What was written: the public facts a page must show, and the internal ones it must never show."""

    population: list[tuple[str, str]]
    selected: list[str]
    records: list[dict] = field(default_factory=list)
    salts: list[str] = field(default_factory=list)
    unrevealed_nonce: str = ""
    superseded_reason: str = "抽取后发现名录导入错误，经批准重新抽取"
    results: dict[str, str] = field(default_factory=dict)  # uscc -> category
    corrected: str = ""  # the uscc whose result was corrected (更正)
    withdrawn: str = ""  # the uscc whose result was withdrawn on application (停止公示, R27)
    correction_reason: str = "录入时检查结果类别选择有误，经审核更正"


def populate(engine) -> Year:
    population = sorted((make_uscc(f"91360202MA{n:07d}"), "ABCDU"[n % 5]) for n in range(40))
    names = {uscc: ENTITY_NAMES[n % len(ENTITY_NAMES)] + f"{n}号" for n, (uscc, _) in enumerate(population)}
    lines = {T1: line(T1, "景市监抽查〔2025〕1号", "企业公示信息随机抽查"),
             T2: line(T2, "景市监抽查〔2025〕2号", "食品经营者随机抽查")}
    with engine.begin() as c:
        n = 0

        def put(kind: str, payload: dict, **columns) -> None:
            nonlocal n
            n += 1
            publish(c, workflow_id=f"wf-{columns.get('task_id') or PLAN}", step=f"s{n}", kind=kind,
                    at=AT + timedelta(days=n), year=YEAR, payload=payload, **columns)

        _directory(c, population, names)
        _plan(c, lines)
        put("plan", public.plan(plan_code=PLAN, year=YEAR, owner_unit=OWNER, tasks=[T1], document_sha256="ab" * 32),
            plan_code=PLAN)
        put("adjustment", public.adjustment(PLAN, Adjustment(kind="add", task_id=T2, reason="群众投诉较多，增设专项任务",
                                                              approver="planner-li")), plan_code=PLAN, task_id=T2)
        year = Year(population=population, selected=[])
        for seq in (1, 2):
            record, selected, freeze, salt = _draw(T1, seq, population, year)
            year.salts.append(salt)
            put("task", public.task_announced(T1, lines[T1], seq, {"commitment": record["commitment"],
                                                                 "entropy_source": record["entropy_source"]}),
                plan_code=PLAN, task_id=T1, unit=UNIT)
            put("draw", public.frozen(T1, seq, freeze), plan_code=PLAN, task_id=T1)
            put("draw", record, plan_code=PLAN, task_id=T1)
            year.records.append(record)
            if seq == 1:
                put("draw", public.superseded(T1, 1, year.superseded_reason, "supervisor-wang"),
                    plan_code=PLAN, task_id=T1)
        year.selected = selected
        categories = ["no_issue", "unpublished_info", "pending_investigation"]
        for k, uscc in enumerate(selected):
            category = categories[k % len(categories)]
            year.results[uscc] = category
            target = {"check_date": date(2025, 4, 10 + k), "category": category}
            _target(c, uscc, category)
            put("result", public.result(T1, lines[T1], uscc, names[uscc], target), plan_code=PLAN, task_id=T1,
                uscc=uscc, category=category, unit=UNIT)
            if category != "no_issue":
                kind = "order_to_publish" if category == "unpublished_info" else "case_lead"
                open_follow_up(c, lead_id=f"{T1}/{uscc}/follow-up", kind=kind, task_id=T1,
                               task_code=lines[T1]["task_code"], uscc=uscc, entity_name=names[uscc],
                               category=category, at=AT + timedelta(days=60),
                               due_at=AT + timedelta(days=74) if kind == "order_to_publish" else None,
                               workflow_id=f"target-{uscc}", step="follow-up")
        put("task", public.task_closed(T1, lines[T1], selected, False, None), plan_code=PLAN, task_id=T1)
        _corrected_and_withdrawn(c, put, year, [names[u] for u in selected[:3]])
        # The second task is announced and frozen; its nonce stays secret until its draw.
        nonce = secrets.token_bytes(32)
        year.unrevealed_nonce = nonce.hex()
        announce(c, task_id=T2, draw_seq=1, commitment=draw.commitment(nonce), nonce=nonce,
                 entropy_source=draw.NO_ENTROPY, reason=None, approver=None, workflow_id=f"wf-{T2}", step="announce-1")
        put("task", public.task_announced(T2, lines[T2], 1, {"commitment": draw.commitment(nonce),
                                                              "entropy_source": draw.NO_ENTROPY}),
            plan_code=PLAN, task_id=T2, unit=UNIT)
    return year


def _corrected_and_withdrawn(c, put, year: Year, names: list[str]) -> None:
    """The first result corrected, the third withdrawn after an approved application, as their activities write them."""
    rows = {r["uscc"]: r for r in c.execute(select(schema.publications).where(
        schema.publications.c.kind == "result")).mappings()}
    year.corrected, _, year.withdrawn = year.selected[:3]
    original = rows[year.corrected]
    put("correction", public.correction(json.loads(original["payload"]), n=1, corrects=original["publication_id"],
                                        previous_category=original["category"], category_code="ordered_to_correct",
                                        note=None, reason=year.correction_reason,
                                        corrected_on=date(2025, 6, 2)),
        task_id=T1, uscc=year.corrected, category="ordered_to_correct", unit=UNIT)
    put("withdrawal", public.withdrawal(task_id=T1, uscc=year.withdrawn,
                                        withdraws=rows[year.withdrawn]["publication_id"],
                                        decided_on=date(2025, 7, 1), eligible_from=date(2025, 10, 1)),
        task_id=T1, uscc=year.withdrawn, unit=UNIT)


def _draw(task_id: str, seq: int, population, year: Year):
    salt, nonce = secrets.token_bytes(32), secrets.token_bytes(32)
    digest = draw.PopulationDigest(salt)
    for uscc, stratum in population:
        digest.add(uscc, stratum)
    plans = draw.plan_strata(digest.counts, RATIOS)
    entropy = f"3D-202509{seq}"
    seed = draw.draw_seed(task_id, digest.hexdigest(), nonce, entropy)
    selected = sorted(draw.select(seed, population, {s: p.quota for s, p in plans.items()}))
    frozen_at = AT + timedelta(days=10 * seq)
    freeze = FreezeSummary(frozen_at=frozen_at, population=len(population), strata=dict(digest.counts),
                           exclusions={"not_active": 3}, population_digest=digest.hexdigest())
    record = draw.public_record(
        task_id=task_id, task_code="景市监抽查〔2025〕1号", draw_seq=seq,
        reason=year.superseded_reason if seq > 1 else None, approver="supervisor-wang" if seq > 1 else None,
        freeze={"frozen_at": frozen_at.isoformat(), "population_digest": digest.hexdigest(),
                "exclusions": {"not_active": 3}},
        strata=plans, commitment=draw.commitment(nonce), entropy_source="福利彩票3D", entropy=entropy,
        nonce=nonce.hex(), seed=seed.hex(), selection_digest=draw.selection_digest(selected))
    return record, selected, freeze, salt.hex()


def _directory(c, population, names) -> None:
    """The internal side: inspectors, entities with their risk classes (stratum U is unclassified); and the
    units, public, with their names."""
    c.execute(insert(schema.units), [
        dict(unit_code=OWNER, name=OLD_OWNER_NAME, parent_code=None, review_required=True,
             valid_from=AT - timedelta(days=800), valid_to=AT - timedelta(days=400), batch_id=1),
        *(dict(unit_code=code, name=name, parent_code=None if code == OWNER else OWNER, review_required=True,
               valid_from=AT - timedelta(days=400), valid_to=None, batch_id=1) for code, name in UNIT_NAMES.items())])
    c.execute(insert(schema.inspectors), [dict(
        inspector_id=i, name=name, unit_code=UNIT, region="360202", qualifications="registration", expertise="",
        recusal="", cert_no=f"3602022200{k:02d}", cert_expiry=date(2028, 12, 31), status="active", roles="inspector",
        valid_from=AT - timedelta(days=400), batch_id=1) for k, (i, name) in enumerate(INSPECTORS.items())])
    c.execute(insert(schema.entities), [dict(
        uscc=uscc, name=names[uscc], subject_type="enterprise", region="360202", industry="5211",
        risk_class="" if stratum == "U" else stratum, status="active", address="景德镇市昌江区", labels="",
        valid_from=AT - timedelta(days=400), batch_id=1) for uscc, stratum in population])


def _plan(c, lines: dict) -> None:
    """The stored plan and its task lines, and the directory's item with its legal basis."""
    c.execute(insert(schema.plans).values(plan_code=PLAN, year=YEAR, owner_unit=UNIT, document="{}",
                                          document_sha256="ab" * 32, loaded_at=AT))
    c.execute(insert(schema.plan_tasks), [dict(task_id=t, plan_code=PLAN, document=json.dumps(task, ensure_ascii=False),
                                               origin="plan") for t, task in lines.items()])
    c.execute(insert(schema.items).values(
        item_code="GS-001", name="企业公示信息检查", legal_basis=LEGAL_BASIS, category="general",
        methods="document;online;onsite", qualification="registration", effective_from=date(2020, 1, 1),
        public_info_check=True, ratio_cap="0.20", target_labels="", checklist="GS-001-1",
        valid_from=AT - timedelta(days=400), batch_id=1))


def _target(c, uscc: str, category: str) -> None:
    """The internal record of a checked target: its team, who entered and who reviewed its result."""
    ids = list(INSPECTORS)
    c.execute(insert(schema.teams).values(
        task_id=T1, uscc=uscc, unit_code=UNIT, inspectors=";".join(ids[:2]), source="draw", at=AT,
        workflow_id=f"wf-{T1}", step="dispatch"))
    c.execute(insert(schema.targets).values(
        task_id=T1, uscc=uscc, workflow_id=f"target-{uscc}", kind="random", stage="published",
        check_date=date(2025, 4, 10), method="onsite", category=category, entered_by=ids[0], reviewed_by=ids[2],
        updated_at=AT))
