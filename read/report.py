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
from typing import Any, Iterable

from audit.verify import VerifyReport, verify_draw
from db.engine import Connection
from domain.categories import CATEGORIES, FollowUpKind
from domain.workdays import SHANGHAI
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

COLORS = {"ok": "#2e7d4f", "late": "#d08a1e", "missed": "#c0392b", "bar": "#2f6db5", "problem": "#c0392b",
          "open": "#d08a1e", "closed": "#2e7d4f", "track": "#e6eaf0"}


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
    return _document(year, body)


# --- page --------------------------------------------------------------------------------------------
CSS = """
:root { --ink:#1d2733; --muted:#5b6876; --line:#d9dee5; --bg:#f5f7fa; --card:#fff; --accent:#2f6db5; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font-family: "Noto Sans CJK SC","Source Han Sans SC","WenQuanYi Zen Hei","WenQuanYi Micro Hei","PingFang SC",
  "Microsoft YaHei","Hiragino Sans GB",system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;
  font-size:14px; line-height:1.5; }
main { max-width:1180px; margin:0 auto; padding:24px 28px 48px; }
header.top { background:#1f3b5c; color:#fff; padding:22px 28px; }
header.top .inner { max-width:1180px; margin:0 auto; }
header.top h1 { margin:0 0 4px; font-size:24px; font-weight:600; }
header.top .sub { color:#c9d6e6; font-size:13px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:18px 22px; margin:18px 0; }
h2 { font-size:18px; margin:0 0 12px; font-weight:600; }
h2 .en, h3 .en, th .en, .label .en { color:var(--muted); font-weight:400; font-size:.85em; margin-left:6px; }
h3 { font-size:15px; margin:16px 0 8px; font-weight:600; }
table { border-collapse:collapse; width:100%; margin:6px 0 10px; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#eef2f7; font-weight:600; font-size:13px; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
.mono { font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace; font-size:12px; word-break:break-all; }
.muted { color:var(--muted); }
.chips span { display:inline-block; background:#eef2f7; border-radius:10px; padding:1px 8px; margin:1px 4px 1px 0; font-size:12px; }
.cards { display:grid; grid-template-columns:repeat(4,1fr); gap:14px; }
.card { border:1px solid var(--line); border-radius:8px; padding:14px 16px; background:#fbfcfe; }
.card .label { font-weight:600; font-size:14px; }
.card .big { font-size:30px; font-weight:700; margin:6px 0 2px; font-variant-numeric:tabular-nums; }
.card .frac { font-size:14px; font-variant-numeric:tabular-nums; }
.card .note { font-size:12px; color:var(--muted); margin-top:6px; }
.stats { display:flex; flex-wrap:wrap; gap:10px 28px; margin-top:10px; font-size:13px; color:#dfe8f3; }
.stats b { color:#fff; font-size:16px; margin-right:4px; }
.badge { display:inline-block; border-radius:4px; padding:1px 8px; font-weight:700; font-size:12px; color:#fff; }
.badge.pass { background:#2e7d4f; } .badge.fail { background:#c0392b; } .badge.none { background:#8a96a3; }
.task { border-top:2px solid var(--line); padding-top:10px; margin-top:14px; }
.task:first-of-type { border-top:none; margin-top:0; }
.draw { display:grid; grid-template-columns: 1fr 1.25fr; gap:14px; margin:8px 0 4px; align-items:start; }
.draw table { margin:0; }
details { margin:4px 0; font-size:13px; }
details summary { cursor:pointer; color:var(--accent); }
.check-ok { color:#2e7d4f; } .check-fail { color:#c0392b; font-weight:600; }
.legend span { display:inline-block; margin-right:16px; font-size:12px; }
.legend i { display:inline-block; width:10px; height:10px; margin-right:4px; border-radius:2px; vertical-align:middle; }
svg text { font-family:inherit; }
.cancelled { color:#c0392b; font-weight:600; }
footer { color:var(--muted); font-size:12px; text-align:center; margin-top:24px; }
@media print { body { background:#fff; } section { break-inside:avoid; } }
"""


def _document(year: int, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="spotcheck report">
<title>{year}年度双随机、一公开抽查报告 · Spot-check report {year}</title>
<style>{CSS}</style>
</head>
<body data-report-year="{year}">
{body}
<footer>spotcheck · 双随机、一公开 · 本报告为内部工作视图，不含任何市场主体的信用风险分类 ·
operators' view; no entity's credit-risk class is shown (R29)</footer>
</main>
</body>
</html>
"""


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
<div class="sub">统计截至 As of <span id="as-of" data-value="{escape(as_of.isoformat())}">{escape(_local(as_of))}</span>
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
{_gauge(value)}
<div class="frac"><span id="metric-{name}-numerator" data-metric="{name}" data-field="numerator" data-value="{ratio['numerator']}">{ratio['numerator']:,}</span>
/ <span id="metric-{name}-denominator" data-metric="{name}" data-field="denominator" data-value="{ratio['denominator']}">{ratio['denominator']:,}</span></div>
<div class="note">{escape(METRIC_NOTES[name])}</div>
</div>""")
    return f"""<section id="metrics" data-year="{figures['year']}">
<h2>四项评价指标<span class="en">The four evaluation metrics</span></h2>
<div class="cards">{''.join(cards)}</div>
<p class="muted" style="margin:10px 0 0;font-size:12px">分母为 0 时不计算比率（显示“—”）。A ratio with a zero denominator has no value (—): nothing to measure is not a score.</p>
</section>"""


def _gauge(value: float | None) -> str:
    width = 220
    filled = 0 if value is None else round(min(max(value, 0.0), 1.0) * width)
    return (f'<svg width="{width}" height="8" viewBox="0 0 {width} 8" role="img" aria-hidden="true">'
            f'<rect width="{width}" height="8" rx="4" fill="{COLORS["track"]}"/>'
            f'<rect width="{filled}" height="8" rx="4" fill="{COLORS["bar"]}"/></svg>')


# --- plans and adjustments ---------------------------------------------------------------------------
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
            f'<td>{escape(_local(pub.published_at)) if pub else "<span class=muted>未公示 not published</span>"}</td>'
            f'<td class="num">{c["plan"]}</td><td class="num">{c["adjustment"]}</td><td class="num">{c["cancelled"]}</td>'
            f'<td class="mono" title="{escape(plan["document_sha256"])}">{escape(plan["document_sha256"][:16])}…</td></tr>')
    plans_table = _table(
        ["计划编号|Plan", "制定单位|Owner unit", "公示时间|Published", "计划任务|Planned tasks#",
         "调整增加|Added#", "已取消|Cancelled#", "文件摘要|Document SHA-256"],
        rows, "本年度无计划 No plan for this year", table_id="plans")

    rows = []
    for adj in views.adjustments_of_year(connection, year):
        payload = json.loads(adj.payload)
        kind = payload.get("adjustment")
        kind_label = {"add": "增加任务 add task", "cancel": "取消任务 cancel task"}.get(kind, str(kind))
        rows.append(
            f'<tr data-adjustment="{escape(str(kind))}"><td>{escape(_local(adj.published_at))}</td>'
            f'<td class="mono">{escape(adj.plan_code or "")}</td><td>{escape(kind_label)}</td>'
            f'<td class="mono">{escape(adj.task_id or "")}</td><td>{escape(payload.get("reason") or "")}</td>'
            f'<td>{escape(payload.get("approver") or "")}</td></tr>')
    adjustments_table = _table(
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
        status = (f'<span class="cancelled">已取消 cancelled {escape(_local_text(task["cancelled_at"]))}</span>'
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
        details = (f"冻结总体 Frozen population: {population:,} · 冻结于 frozen at {escape(_local_text(freeze.get('frozen_at')))}"
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
<tr><th>冻结 Frozen</th><td>{escape(_local_text(public.get('frozen_at')))} · 排除 excluded: {escape(excluded)}</td></tr>
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
        bars.append((f"{cat.name_zh}", CATEGORY_EN[code], total, COLORS["problem"] if cat.problem else COLORS["bar"]))
        rows.append(f'<tr data-category="{code}" data-count="{total}"><td>{escape(cat.name_zh)} '
                    f'<span class="muted mono">{code}</span></td><td>{"是 yes" if cat.problem else "否 no"}</td>'
                    f'<td class="num">{c["random"]:,}</td><td class="num">{c["targeted"]:,}</td>'
                    f'<td class="num"><b>{total:,}</b></td></tr>')
    grand = sum(sum(c.values()) for c in counts.values())
    rows.append(f'<tr><th>合计 Total</th><th></th><th class="num">{sum(c["random"] for c in counts.values()):,}</th>'
                f'<th class="num">{sum(c["targeted"] for c in counts.values()):,}</th><th class="num">{grand:,}</th></tr>')
    table = _table(["结果类别|Category", "发现问题|Problem", "随机|Random#", "定向|Targeted#", "合计|Total#"], rows,
                   "", table_id="results-table")
    legend = (f'<div class="legend"><span><i style="background:{COLORS["bar"]}"></i>未发现问题类 no problem</span>'
              f'<span><i style="background:{COLORS["problem"]}"></i>发现问题类 problem</span></div>')
    return f"""<section id="results">
<h2>检查结果分类<span class="en">Results per category</span></h2>
<p class="muted" style="margin-top:0;font-size:12px">已认可的结果（复核通过），按检查日期计入年度。Accepted (approved) results whose check date is in {year}.</p>
{legend}
{_hbar_chart(bars, chart_id="results-chart")}
{table}
</section>"""


# --- deadlines ----------------------------------------------------------------------------------------
def _deadlines_section(connection: Connection, year: int, as_of: datetime, figures: dict) -> str:
    published, on_time = views.result_publications(connection, year)
    late = published - on_time
    overdue = figures["on_time_publication_rate"]["denominator"] - published  # deadline passed, not published
    pending = views.pending_publications(connection, year, as_of)
    segments = [("按时公示 on time", on_time, COLORS["ok"], "on_time"), ("逾期公示 published late", late, COLORS["late"], "late"),
                ("逾期未公示 overdue, unpublished", overdue, COLORS["missed"], "overdue")]
    counts = "".join(
        f'<tr data-deadline="{key}" data-count="{n}"><td><i style="display:inline-block;width:10px;height:10px;'
        f'background:{color};border-radius:2px;margin-right:6px"></i>{escape(label)}</td><td class="num">{n:,}</td></tr>'
        for label, n, color, key in segments)
    counts += (f'<tr data-deadline="pending" data-count="{pending}"><td class="muted">期限未到、尚未公示 not yet due, '
               f'unpublished</td><td class="num muted">{pending:,}</td></tr>')

    alert_counts = views.alert_counts(connection, year=year)
    escalations = views.escalations_of_year(connection, year)
    rows = [f'<tr><td>{escape(_local(e.at))}</td><td class="mono">{escape(e.task_id or "")}</td>'
            f'<td class="mono">{escape(e.uscc or "")}</td><td class="mono">{escape(e.step)}</td>'
            f'<td>{escape(e.details)}</td></tr>' for e in escalations[:SHOWN_ESCALATIONS]]
    if len(escalations) > SHOWN_ESCALATIONS:
        rows.append(f'<tr><td colspan="5" class="muted">…另有 {len(escalations) - SHOWN_ESCALATIONS} 条 and '
                    f'{len(escalations) - SHOWN_ESCALATIONS} more</td></tr>')
    escalation_table = _table(["时间|At", "任务|Task", "统一社会信用代码|USCC", "环节|Step", "说明|Details"], rows,
                              "本年度无升级督办 No escalation this year", table_id="escalation-list")
    return f"""<section id="deadlines">
<h2>公示期限<span class="en">Deadlines met and missed</span></h2>
<p class="muted" style="margin-top:0;font-size:12px">检查结果应在检查之日起20个工作日内公示（复核退回不重新计时）。
Results are due for publication within 20 working days of the check date; a return does not restart the clock.</p>
<div style="display:grid;grid-template-columns:1.4fr 1fr;gap:18px;align-items:start">
<div>{_stacked_bar([(label, n, color) for label, n, color, _ in segments], chart_id="deadline-chart")}</div>
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
        bars.append((zh, en, [(c[s], COLORS[s]) for s in FOLLOW_UP_STATES]))
    rows.append("<tr><th>合计 Total</th>" + "".join(
        f'<th class="num">{sum(c[s] for c in grid.values()):,}</th>' for s in FOLLOW_UP_STATES)
        + f'<th class="num">{sum(sum(c.values()) for c in grid.values()):,}</th></tr>')
    table = _table(["后续处置|Follow-up", *(f"{zh}|{en}#" for zh, en in (STATE_LABELS[s] for s in FOLLOW_UP_STATES)),
                    "合计|Total#"], rows, "", table_id="follow-up-table")
    legend = "".join(f'<span><i style="background:{COLORS[s]}"></i>{escape(" ".join(STATE_LABELS[s]))}</span>'
                     for s in FOLLOW_UP_STATES)
    return f"""<section id="follow-ups">
<h2>后续处置<span class="en">Follow-ups by kind and state</span></h2>
<p class="muted" style="margin-top:0;font-size:12px">检查日期在{year}年的结果所引出的后续处置；已关联处罚决定书 {linked:,} 件。
Follow-ups of results checked in {year}; {linked:,} case lead(s) linked to a penalty decision.</p>
<div class="legend">{legend}</div>
{_grouped_stack_chart(bars, chart_id="follow-up-chart")}
{table}
</section>"""


# --- SVG charts ----------------------------------------------------------------------------------------
def _hbar_chart(bars: list[tuple[str, str, int, str]], chart_id: str) -> str:
    """Horizontal bars: (label, English label, value, colour)."""
    width, label_w, row_h, top = 1080, 330, 30, 6
    plot_w = width - label_w - 70
    peak = max((v for *_, v, _ in bars), default=0) or 1
    parts = []
    for i, (label, en, value, color) in enumerate(bars):
        y = top + i * row_h
        bar_w = round(plot_w * value / peak) if value else 0
        parts.append(
            f'<text x="{label_w - 10}" y="{y + 13}" text-anchor="end" font-size="13" fill="#1d2733">{escape(label)}</text>'
            f'<text x="{label_w - 10}" y="{y + 25}" text-anchor="end" font-size="10" fill="#5b6876">{escape(en)}</text>'
            f'<rect x="{label_w}" y="{y + 5}" width="{plot_w}" height="18" fill="{COLORS["track"]}" rx="3"/>'
            f'<rect x="{label_w}" y="{y + 5}" width="{bar_w}" height="18" fill="{color}" rx="3"/>'
            f'<text x="{label_w + bar_w + 6}" y="{y + 19}" font-size="13" font-weight="600" fill="#1d2733">{value:,}</text>')
    height = top * 2 + row_h * len(bars)
    return (f'<svg id="{chart_id}" width="100%" viewBox="0 0 {width} {height}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')


def _stacked_bar(segments: list[tuple[str, int, str]], chart_id: str) -> str:
    """One horizontal bar split into segments, with a legend under it."""
    width, height, bar_h = 640, 92, 34
    total = sum(n for _, n, _ in segments)
    parts = [f'<rect x="0" y="0" width="{width}" height="{bar_h}" rx="4" fill="{COLORS["track"]}"/>']
    x = 0.0
    for label, n, color in segments:
        if not n:
            continue
        w = width * n / total
        parts.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{bar_h}" fill="{color}"/>')
        if w > 40:
            parts.append(f'<text x="{x + w / 2:.1f}" y="{bar_h / 2 + 5:.1f}" text-anchor="middle" font-size="13" '
                         f'font-weight="600" fill="#fff">{n:,} ({n / total:.0%})</text>')
        x += w
    if not total:
        parts.append(f'<text x="{width / 2}" y="{bar_h / 2 + 5}" text-anchor="middle" font-size="13" '
                     f'fill="#5b6876">尚无应公示的结果 nothing due yet</text>')
    lx = 0
    for label, n, color in segments:
        parts.append(f'<rect x="{lx}" y="{bar_h + 22}" width="10" height="10" rx="2" fill="{color}"/>'
                     f'<text x="{lx + 14}" y="{bar_h + 31}" font-size="12" fill="#1d2733">{escape(label)}: {n:,}</text>')
        lx += 215
    return (f'<svg id="{chart_id}" width="100%" viewBox="0 0 {width} {height}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')


def _grouped_stack_chart(bars: list[tuple[str, str, list[tuple[int, str]]]], chart_id: str) -> str:
    """One horizontal stacked bar per row: (label, English label, [(value, colour)…])."""
    width, label_w, row_h = 1080, 250, 32
    plot_w = width - label_w - 90
    peak = max((sum(v for v, _ in segs) for *_, segs in bars), default=0) or 1
    parts = []
    for i, (label, en, segs) in enumerate(bars):
        y = 4 + i * row_h
        parts.append(
            f'<text x="{label_w - 10}" y="{y + 13}" text-anchor="end" font-size="13" fill="#1d2733">{escape(label)}</text>'
            f'<text x="{label_w - 10}" y="{y + 25}" text-anchor="end" font-size="10" fill="#5b6876">{escape(en)}</text>'
            f'<rect x="{label_w}" y="{y + 5}" width="{plot_w}" height="18" fill="{COLORS["track"]}" rx="3"/>')
        x = float(label_w)
        for value, color in segs:
            w = plot_w * value / peak
            if w:
                parts.append(f'<rect x="{x:.1f}" y="{y + 5}" width="{w:.1f}" height="18" fill="{color}"/>')
            x += w
        total = sum(v for v, _ in segs)
        detail = " / ".join(f"{v:,}" for v, _ in segs)
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 19}" font-size="12" fill="#1d2733">'
                     f'<tspan font-weight="600">{total:,}</tspan> ({detail})</text>')
    height = 8 + row_h * len(bars)
    return (f'<svg id="{chart_id}" width="100%" viewBox="0 0 {width} {height}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')


# --- helpers ----------------------------------------------------------------------------------------
def _table(headers: Iterable[str], rows: list[str], empty: str, table_id: str) -> str:
    """A table; a header "中文|English" shows both, a trailing '#' right-aligns the column."""
    cells = []
    for header in headers:
        numeric = header.endswith("#")
        zh, _, en = header.rstrip("#").partition("|")
        cells.append(f'<th{" class=num" if numeric else ""}>{escape(zh)}'
                     f'{f"<span class=en>{escape(en)}</span>" if en else ""}</th>')
    if not rows and empty:
        return f'<table id="{table_id}"><tr>{"".join(cells)}</tr><tr><td colspan="{len(cells)}" class="muted">{escape(empty)}</td></tr></table>'
    return f'<table id="{table_id}"><tr>{"".join(cells)}</tr>{"".join(rows)}</table>'


def _local(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:  # SQLite gives back UTC wall time
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _local_text(value: Any) -> str:
    if isinstance(value, datetime):
        return _local(value)
    if isinstance(value, str) and value:
        try:
            return _local(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return value
    return ""
