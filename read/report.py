"""The operators' view of a year: one self-contained HTML file (`spotcheck report --year YYYY`).

Everything is inline: CSS in a <style> element, charts as SVG drawn here, no script, no font,
no image, no link to anything; a Content-Security-Policy forbids loads, so the file opens the same
with no network. Labels are Chinese and English.

What it shows, all read from the database (read.metrics, read.tasks and the rows of store.views):
the year's plans and their published adjustments; each task's draws (population, strata quotas,
digests, commitment, entropy source) with the draw recomputed here by the independent verifier
(audit.verify.verify_draw) from the stored audit package; results per category; deadlines met
and missed; follow-ups by kind and state; alerts; and the four metrics.

The four metrics carry machine-readable attributes, stable across versions:
`<… id="metric-NAME-FIELD" data-metric="NAME" data-field="value|numerator|denominator"
data-value="JSON">` where NAME is a key of `Metrics.as_json()` and data-value is the JSON of the
number (`null` for a value with a zero denominator). Each draw's verification cell carries
`data-verify="PASS|FAIL"`, `data-task` and `data-draw-seq`.

Credit-risk classes (R29): only aggregate strata counts (the public draw record's `strata`) are
shown; the population rows are read only to feed the verifier, and no entity is ever listed with
its class. Entities appear by USCC only in the escalation list.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, timezone
from html import escape

from audit.verify import VerifyReport, verify_draw
from db.engine import Connection
from domain.categories import CATEGORIES, FollowUpKind
from read import report_blocks as page
from read.audit_package import audit_record
from read.metrics import metrics
from read.tasks import task_rows
from store import views
from store.views import FOLLOW_UP_STATES

METRIC_LABELS = {
    "inspected_share": ("抽查户次占比", "Inspected share of active entities"),
    "joint_rate": ("部门联合双随机监管率", "Joint-inspection rate"),
    "on_time_publication_rate": ("检查结果按时公示率", "On-time publication rate"),
    "problem_disposal_rate": ("发现问题处置率", "Problem disposal rate"),
}
METRIC_NOTES = {
    "inspected_share": "随机抽取并已认可结果的户次 / 年末在册正常经营主体 · random-draw targets with an accepted result / active entities at 31 Dec",
    "joint_rate": "有联合部门的任务 / 年度任务（不含已取消） · tasks with partner units / tasks (cancelled excluded)",
    "on_time_publication_rate": "按期公示的结果 / 已公示或已逾期的结果 · results published on time / published or overdue",
    "problem_disposal_rate": "后续处置已办结的问题结果 / 问题结果 · problem results whose follow-up is closed / problem results",
}
FOLLOW_UP_LABELS = {
    FollowUpKind.CASE_LEAD.value: ("案源线索", "case lead"),
    FollowUpKind.ABNORMAL_LISTING.value: ("列入经营异常名录", "abnormal-operations listing"),
    FollowUpKind.ORDER_TO_PUBLISH.value: ("责令公示", "order to publish"),
    FollowUpKind.CORRECTION.value: ("责令改正", "correction order"),
}
CATEGORY_EN = {
    "no_issue": "no issue found", "unpublished_info": "required information not published",
    "unreachable": "unreachable at registered address", "obstructed": "seriously obstructed the check",
    "no_activity": "no relevant business activity", "ordered_to_correct": "ordered to correct",
    "pending_investigation": "pending investigation", "passed": "passed", "failed": "failed", "other": "other",
}
STATE_LABELS = {"open": ("办理中", "open"), "closed": ("已办结", "closed")}
DRAW_STATE_LABELS = {"announced": "已公告 announced", "frozen": "已冻结 frozen", "drawn": "已抽取 drawn",
                     "superseded": "已被重抽取代 superseded"}
EXCLUSION_LABELS = {"deregistered": "已注销 deregistered", "revoked": "已吊销 revoked",
                    "frequency_cap": "已达年度抽查频次 frequency cap",
                    "a_class_already_drawn": "A类本年已抽 A-class already drawn"}
SHOWN_ESCALATIONS = 50


# --- entry point -----------------------------------------------------------------------------------
def render_report(connection: Connection, year: int, as_of: datetime | None = None) -> str:
    """The year's report as one HTML document. `as_of` is "now" for overdue results (default: now)."""
    as_of = (as_of or datetime.now(timezone.utc)).astimezone(timezone.utc)
    figures = metrics(connection, year, as_of).as_json()
    tasks = [row for row in task_rows(connection) if row["year"] == year]
    body = "\n".join((
        _header(year, as_of, tasks),
        _metrics_section(figures),
        _plans_section(connection, year),
        _draws_section(connection, year, tasks),
        _results_section(connection, year),
        _deadlines_section(connection, year, as_of, figures),
        _follow_ups_section(connection, year),
    ))
    return page.document(year, body)


def _header(year: int, as_of: datetime, tasks: list[dict]) -> str:
    live = [r for r in tasks if not r["cancelled_at"]]
    targets = sum(sum(r["targets"].values()) for r in tasks)
    stats = [
        (len({r["plan_code"] for r in tasks}), "计划 plans"),
        (len(live), "任务 tasks"),
        (len(tasks) - len(live), "已取消 cancelled"),
        (sum(1 for r in live if r["partner_units"]), "联合 joint"),
        (targets, "检查对象 targets"),
        (sum(r["overdue"] for r in tasks), "逾期 overdue"),
    ]
    return f"""<header class="top"><div class="inner">
<h1>{year}年度 双随机、一公开 抽查工作报告 <span style="font-weight:400;font-size:17px;color:#c9d6e6">· Annual spot-check report {year}</span></h1>
<div class="sub">统计截至 As of <span id="as-of" data-value="{escape(as_of.isoformat())}">{escape(page.local(as_of))}</span>
（北京时间 Asia/Shanghai）</div>
<div class="stats">{''.join(f'<div><b>{n}</b>{escape(label)}</div>' for n, label in stats)}</div>
</div></header>
<main>"""


# --- metrics ------------------------------------------------------------------------------------------
def _metrics_section(figures: dict) -> str:
    cards = []
    for name, (zh, en) in METRIC_LABELS.items():
        ratio = figures[name]
        value = ratio["value"]
        shown = "—" if value is None else f"{value * 100:.2f}%"
        cards.append(f"""<div class="card" id="metric-{name}" data-metric="{name}">
<div class="label">{escape(zh)}<br><span class="en">{escape(en)}</span></div>
<div class="big" id="metric-{name}-value" data-metric="{name}" data-field="value" data-value="{escape(json.dumps(value))}">{shown}</div>
{page.gauge(value)}
<div class="frac"><span id="metric-{name}-numerator" data-metric="{name}" data-field="numerator" data-value="{ratio['numerator']}">{ratio['numerator']:,}</span>
/ <span id="metric-{name}-denominator" data-metric="{name}" data-field="denominator" data-value="{ratio['denominator']}">{ratio['denominator']:,}</span></div>
<div class="note">{escape(METRIC_NOTES[name])}</div>
</div>""")
    return f"""<section id="metrics" data-year="{figures['year']}">
<h2>四项评价指标<span class="en">The four evaluation metrics</span></h2>
<div class="cards">{''.join(cards)}</div>
<p class="muted" style="margin:10px 0 0;font-size:12px">分母为 0 时不计算比率（显示“—”）。A ratio with a zero denominator has no value (—): nothing to measure is not a score.</p>
</section>"""


def _plans_section(connection: Connection, year: int) -> str:
    plans = views.plans_of_year(connection, year)
    published = views.plan_publications(connection, year)
    counts: dict[str, Counter] = defaultdict(Counter)
    for row in views.task_lines(connection, year=year):
        counts[row.plan_code][row.origin] += 1
        counts[row.plan_code]["cancelled"] += row.cancelled_at is not None
    rows = []
    for plan in plans:
        pub = published.get(plan["plan_code"])
        c = counts[plan["plan_code"]]
        rows.append(
            f'<tr data-plan="{escape(plan["plan_code"])}"><td class="mono">{escape(plan["plan_code"])}</td>'
            f'<td>{escape(plan["owner_unit"])}</td>'
            f'<td>{escape(page.local(pub.published_at)) if pub else "<span class=muted>未公示 not published</span>"}</td>'
            f'<td class="num">{c["plan"]}</td><td class="num">{c["adjustment"]}</td><td class="num">{c["cancelled"]}</td>'
            f'<td class="mono" title="{escape(plan["document_sha256"])}">{escape(plan["document_sha256"][:16])}…</td></tr>')
    plans_table = page.table(
        ["计划编号|Plan", "制定单位|Owner unit", "公示时间|Published", "计划任务|Planned tasks#",
         "调整增加|Added#", "已取消|Cancelled#", "文件摘要|Document SHA-256"],
        rows, "本年度无计划 No plan for this year", table_id="plans")

    rows = []
    for adj in views.adjustments_of_year(connection, year):
        payload = json.loads(adj.payload)
        kind = payload.get("adjustment")
        kind_label = {"add": "增加任务 add task", "cancel": "取消任务 cancel task"}.get(kind, str(kind))
        rows.append(
            f'<tr data-adjustment="{escape(str(kind))}"><td>{escape(page.local(adj.published_at))}</td>'
            f'<td class="mono">{escape(adj.plan_code or "")}</td><td>{escape(kind_label)}</td>'
            f'<td class="mono">{escape(adj.task_id or "")}</td><td>{escape(payload.get("reason") or "")}</td>'
            f'<td>{escape(payload.get("approver") or "")}</td></tr>')
    adjustments_table = page.table(
        ["公示时间|Published", "计划|Plan", "调整|Adjustment", "任务|Task", "理由|Reason", "批准人|Approver"],
        rows, "本年度无计划调整 No adjustment this year", table_id="adjustments")
    return f"""<section id="plans">
<h2>年度计划及调整<span class="en">Plans and published adjustments</span></h2>
{plans_table}
<h3>计划调整（已公示）<span class="en">Adjustments (published before taking effect, R5)</span></h3>
{adjustments_table}
</section>"""


# --- tasks and draws -----------------------------------------------------------------------------------
def _draws_section(connection: Connection, year: int, tasks: list[dict]) -> str:
    documents = {row.task_id: json.loads(row.document) for row in views.task_lines(connection, year=year)}
    draws: dict[str, list] = defaultdict(list)
    for row in views.draws_of_year(connection, year):
        draws[row["task_id"]].append(row)
    blocks = []
    for task in tasks:
        line = documents.get(task["task_id"], {})
        status = (f'<span class="cancelled">已取消 cancelled {escape(page.local_text(task["cancelled_at"]))}</span>'
                  if task["cancelled_at"] else "")
        partners = task["partner_units"]
        stages = "".join(f"<span>{escape(s)} {n}</span>" for s, n in task["targets"].items()) or "<span>—</span>"
        draw_blocks = "".join(_draw_block(connection, row) for row in draws.get(task["task_id"], [])) or (
            '<p class="muted">尚未公告抽取 No draw announced yet.</p>')
        blocks.append(f"""<div class="task" id="task-{escape(task['task_id'])}" data-task="{escape(task['task_id'])}">
<h3>{escape(task.get('task_code') or '')} <span class="mono">{escape(task['task_id'])}</span> {status}</h3>
<div>{escape(line.get('name', ''))}</div>
<div class="muted" style="font-size:13px">实施单位 Unit: {escape(task.get('unit') or '')}
{('· 联合单位 Partners: ' + escape(', '.join(partners))) if partners else '· 非联合 single-unit'}
· 检查事项 Items: {escape(', '.join(line.get('items', [])))}
· 期间 Window: {escape(str(line.get('starts', '')))} — {escape(str(line.get('ends', '')))}
· 来源 Origin: {escape(task.get('origin') or '')}</div>
<div class="chips" style="margin-top:4px">检查对象环节 Targets by stage: {stages}</div>
{draw_blocks}
</div>""")
    return f"""<section id="draws">
<h2>任务与随机抽取<span class="en">Tasks and their draws (sc-draw-v1, recomputed)</span></h2>
<p class="muted" style="margin-top:0;font-size:12px">每次抽取由独立校验程序根据存档的审计包（公开记录、总体盐值、抽中及定向名单、冻结总体）重新计算。
Each draw is recomputed by the independent verifier from its stored audit package (public record, population salt,
selected and targeted lists, frozen population). 分层仅列汇总数 Strata are shown as aggregate counts only (R29).</p>
{''.join(blocks) or '<p class="muted">本年度无任务 No task this year.</p>'}
</section>"""


def _draw_block(connection: Connection, row) -> str:
    stored = json.loads(row["record"]) if row["record"] else {}
    public = stored.get("public")
    freeze = stored.get("freeze") or {}
    seq = row["draw_seq"]
    state = DRAW_STATE_LABELS.get(row["state"], row["state"])
    head = f'<div class="muted" style="margin-top:8px"><b>抽取 Draw #{seq}</b> · {escape(state)}'
    if row["reason"]:
        head += f' · 重抽理由 Redraw reason: {escape(row["reason"])} · 批准 Approver: {escape(row["approver"] or "")}'
    head += "</div>"
    if public is None:
        population = freeze.get("population")
        details = (f"冻结总体 Frozen population: {population:,} · 冻结于 frozen at {escape(page.local_text(freeze.get('frozen_at')))}"
                   if population is not None else "")
        return (f'{head}<table><tr><th>承诺值 Commitment</th><td class="mono">{escape(row["commitment"])}</td></tr>'
                f'<tr><th>熵源 Entropy source</th><td>{escape(row["entropy_source"])}</td></tr>'
                f'<tr><th>状态 Status</th><td>{details or "尚未冻结 not frozen yet"} · '
                f'<span class="badge none" data-verify="NONE" data-task="{escape(row["task_id"])}" '
                f'data-draw-seq="{seq}">未抽取 not drawn</span></td></tr></table>')
    report = _verify(connection, row)
    verdict = "PASS" if report.ok else "FAIL"
    strata_rows = "".join(
        f'<tr data-stratum="{escape(s)}"><td>{escape(s)}</td><td class="num">{plan["population"]:,}</td>'
        f'<td class="num">{escape(str(plan["ratio"]))}</td><td class="num">{plan["quota"]:,}</td></tr>'
        for s, plan in sorted(public.get("strata", {}).items()))
    total_population = sum(plan["population"] for plan in public.get("strata", {}).values())
    total_quota = sum(plan["quota"] for plan in public.get("strata", {}).values())
    strata_rows += (f'<tr><th>合计 Total</th><th class="num">{total_population:,}</th><th></th>'
                    f'<th class="num">{total_quota:,}</th></tr>')
    exclusions = public.get("exclusions") or {}
    excluded = "; ".join(f"{EXCLUSION_LABELS.get(k, k)} {n:,}" for k, n in sorted(exclusions.items())) or "—"
    checks = "".join(
        f'<li class="{"check-ok" if c.ok else "check-fail"}">{"✓" if c.ok else "✗"} <b>{escape(c.name)}</b>: '
        f'{escape(c.detail)}</li>' for c in report.checks)
    entropy = public.get("entropy") or ""
    return f"""{head}
<div class="draw" data-draw-seq="{seq}">
<table class="strata"><tr><th>分层 Stratum</th><th class="num">总体 Population</th><th class="num">比例 Ratio</th><th class="num">应抽 Quota</th></tr>
{strata_rows}</table>
<table>
<tr><th>校验 Verification</th><td><span class="badge {verdict.lower()}" data-verify="{verdict}" data-task="{escape(row['task_id'])}" data-draw-seq="{seq}">{verdict}</span>
<details><summary>逐项检查 {sum(c.ok for c in report.checks)}/{len(report.checks)} checks</summary><ul>{checks}</ul></details></td></tr>
<tr><th>冻结 Frozen</th><td>{escape(page.local_text(public.get('frozen_at')))} · 排除 excluded: {escape(excluded)}</td></tr>
<tr><th>承诺值 Commitment</th><td class="mono">{escape(public.get('commitment', ''))}</td></tr>
<tr><th>熵源 Entropy source</th><td>{escape(public.get('entropy_source', ''))}{(' · 值 value <span class="mono">' + escape(entropy) + '</span>') if entropy else ''}</td></tr>
<tr><th>总体摘要 Population digest</th><td class="mono">{escape(public.get('population_digest', ''))}</td></tr>
<tr><th>抽中摘要 Selection digest</th><td class="mono">{escape(public.get('selection_digest', ''))}</td></tr>
</table>
</div>"""


def _verify(connection: Connection, row) -> VerifyReport:
    """verify_draw on the audit package as `draw export` would write it, read from the database."""
    return verify_draw(audit_record(connection, row), views.draw_population(connection, row["task_id"], row["draw_seq"]))


# --- results ------------------------------------------------------------------------------------------
def _results_section(connection: Connection, year: int) -> str:
    counts: dict[str, Counter] = defaultdict(Counter)
    for category, kind, n in views.result_counts(connection, year=year):
        counts[category][kind] += n
    bars, rows = [], []
    for code, cat in CATEGORIES.items():
        c = counts.get(code, Counter())
        total = sum(c.values())
        bars.append((f"{cat.name_zh}", CATEGORY_EN[code], total, page.COLORS["problem"] if cat.problem else page.COLORS["bar"]))
        rows.append(f'<tr data-category="{code}" data-count="{total}"><td>{escape(cat.name_zh)} '
                    f'<span class="muted mono">{code}</span></td><td>{"是 yes" if cat.problem else "否 no"}</td>'
                    f'<td class="num">{c["random"]:,}</td><td class="num">{c["targeted"]:,}</td>'
                    f'<td class="num"><b>{total:,}</b></td></tr>')
    grand = sum(sum(c.values()) for c in counts.values())
    rows.append(f'<tr><th>合计 Total</th><th></th><th class="num">{sum(c["random"] for c in counts.values()):,}</th>'
                f'<th class="num">{sum(c["targeted"] for c in counts.values()):,}</th><th class="num">{grand:,}</th></tr>')
    table = page.table(["结果类别|Category", "发现问题|Problem", "随机|Random#", "定向|Targeted#", "合计|Total#"], rows,
                   "", table_id="results-table")
    legend = (f'<div class="legend"><span><i style="background:{page.COLORS["bar"]}"></i>未发现问题类 no problem</span>'
              f'<span><i style="background:{page.COLORS["problem"]}"></i>发现问题类 problem</span></div>')
    return f"""<section id="results">
<h2>检查结果分类<span class="en">Results per category</span></h2>
<p class="muted" style="margin-top:0;font-size:12px">已认可的结果（复核通过），按检查日期计入年度。Accepted (approved) results whose check date is in {year}.</p>
{legend}
{page.hbar_chart(bars, chart_id="results-chart")}
{table}
</section>"""


# --- deadlines ----------------------------------------------------------------------------------------
def _deadlines_section(connection: Connection, year: int, as_of: datetime, figures: dict) -> str:
    published, on_time = views.result_publications(connection, year)
    late = published - on_time
    overdue = figures["on_time_publication_rate"]["denominator"] - published  # deadline passed, not published
    pending = views.pending_publications(connection, year, as_of)
    segments = [("按时公示 on time", on_time, page.COLORS["ok"], "on_time"), ("逾期公示 published late", late, page.COLORS["late"], "late"),
                ("逾期未公示 overdue, unpublished", overdue, page.COLORS["missed"], "overdue")]
    counts = "".join(
        f'<tr data-deadline="{key}" data-count="{n}"><td><i style="display:inline-block;width:10px;height:10px;'
        f'background:{color};border-radius:2px;margin-right:6px"></i>{escape(label)}</td><td class="num">{n:,}</td></tr>'
        for label, n, color, key in segments)
    counts += (f'<tr data-deadline="pending" data-count="{pending}"><td class="muted">期限未到、尚未公示 not yet due, '
               f'unpublished</td><td class="num muted">{pending:,}</td></tr>')

    alert_counts = views.alert_counts(connection, year=year)
    escalations = views.escalations_of_year(connection, year)
    rows = [f'<tr><td>{escape(page.local(e.at))}</td><td class="mono">{escape(e.task_id or "")}</td>'
            f'<td class="mono">{escape(e.uscc or "")}</td><td class="mono">{escape(e.step)}</td>'
            f'<td>{escape(e.details)}</td></tr>' for e in escalations[:SHOWN_ESCALATIONS]]
    if len(escalations) > SHOWN_ESCALATIONS:
        rows.append(f'<tr><td colspan="5" class="muted">…另有 {len(escalations) - SHOWN_ESCALATIONS} 条 and '
                    f'{len(escalations) - SHOWN_ESCALATIONS} more</td></tr>')
    escalation_table = page.table(["时间|At", "任务|Task", "统一社会信用代码|USCC", "环节|Step", "说明|Details"], rows,
                              "本年度无升级督办 No escalation this year", table_id="escalation-list")
    return f"""<section id="deadlines">
<h2>公示期限<span class="en">Deadlines met and missed</span></h2>
<p class="muted" style="margin-top:0;font-size:12px">检查结果应在检查之日起20个工作日内公示（复核退回不重新计时）。
Results are due for publication within 20 working days of the check date; a return does not restart the clock.</p>
<div style="display:grid;grid-template-columns:1.4fr 1fr;gap:18px;align-items:start">
<div>{page.stacked_bar([(label, n, color) for label, n, color, _ in segments], chart_id="deadline-chart")}</div>
<table id="deadline-counts"><tr><th>结果公示 Result publications</th><th class="num">数量 Count</th></tr>{counts}</table>
</div>
<h3>提醒与升级督办<span class="en">Reminders and escalations</span></h3>
<div class="chips" id="alert-counts"><span data-alert="reminder">提醒 reminders {alert_counts.get('reminder', 0):,}</span>
<span data-alert="escalation">升级督办 escalations {alert_counts.get('escalation', 0):,}</span></div>
<div id="escalations">{escalation_table}</div>
</section>"""


# --- follow-ups ---------------------------------------------------------------------------------------
def _follow_ups_section(connection: Connection, year: int) -> str:
    grid: dict[str, Counter] = {kind: Counter() for kind in FOLLOW_UP_LABELS}
    for kind, state, n in views.follow_up_counts(connection, checked_in=year):
        grid.setdefault(kind, Counter())[state] += n
    linked = views.linked_decisions(connection, year)
    rows, bars = [], []
    for kind, c in grid.items():
        zh, en = FOLLOW_UP_LABELS.get(kind, (kind, kind))
        cells = "".join(f'<td class="num" data-state="{s}" data-count="{c[s]}">{c[s]:,}</td>' for s in FOLLOW_UP_STATES)
        rows.append(f'<tr data-follow-up="{escape(kind)}"><td>{escape(zh)} <span class="muted">{escape(en)}</span></td>'
                    f'{cells}<td class="num"><b>{sum(c.values()):,}</b></td></tr>')
        bars.append((zh, en, [(c[s], page.COLORS[s]) for s in FOLLOW_UP_STATES]))
    rows.append("<tr><th>合计 Total</th>" + "".join(
        f'<th class="num">{sum(c[s] for c in grid.values()):,}</th>' for s in FOLLOW_UP_STATES)
        + f'<th class="num">{sum(sum(c.values()) for c in grid.values()):,}</th></tr>')
    table = page.table(["后续处置|Follow-up", *(f"{zh}|{en}#" for zh, en in (STATE_LABELS[s] for s in FOLLOW_UP_STATES)),
                    "合计|Total#"], rows, "", table_id="follow-up-table")
    legend = "".join(f'<span><i style="background:{page.COLORS[s]}"></i>{escape(" ".join(STATE_LABELS[s]))}</span>'
                     for s in FOLLOW_UP_STATES)
    return f"""<section id="follow-ups">
<h2>后续处置<span class="en">Follow-ups by kind and state</span></h2>
<p class="muted" style="margin-top:0;font-size:12px">检查日期在{year}年的结果所引出的后续处置；已关联处罚决定书 {linked:,} 件。
Follow-ups of results checked in {year}; {linked:,} case lead(s) linked to a penalty decision.</p>
<div class="legend">{legend}</div>
{page.grouped_stack_chart(bars, chart_id="follow-up-chart")}
{table}
</section>"""


# --- SVG charts ----------------------------------------------------------------------------------------
