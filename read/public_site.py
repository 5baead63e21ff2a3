"""The public site (公示): static pages, in Chinese, rendered from the public register only.

Everything shown comes from the register's rows (read.register.publication_register), each of which
passed domain.public.check when it was written, from the follow-ups as domain.public.follow_up
builds them for outside systems (checked again here), and from the directory's unit names (the bureaus,
named where the rows hold their codes). Nothing else is read, so nothing internal
(risk classes, inspectors, salts, populations, unrevealed nonces) can reach a page. A result withdrawn on
application (停止公示, R27) leaves every page (domain.public.still_public decides); a corrected one shows
its correction beside it (更正).

`site` returns {relative path: text}; the door writes them. Pages carry no script and load nothing (their
style is inline; a Content-Security-Policy forbids the rest). The two checkers are assets of their own:
verify.html as it is, notice-check.html with the published notice keys written in (`notice_check_page`).
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from html import escape

from db.engine import Connection
from domain import draw, public
from domain.notices import b64url
from domain.workdays import SHANGHAI
from read.register import case_list, publication_register
from store.directory import unit_names

ADJUSTMENTS = {"add": "新增任务", "cancel": "取消任务"}
FOLLOW_UPS = {"case_lead": "移送案件线索", "abnormal_listing": "列入经营异常名录", "order_to_publish": "责令公示",
              "correction": "责令改正"}
WITHHELD = "（依法不予公示）"  # in place of a field withheld before publication (R23)
TASK_STATES = {"closed": "已结束", "cancelled": "已取消"}
# Why an entity left the population (store.draws.eligible_population): its status, or the frequency rules.
EXCLUSIONS = {"deregistered": "已注销", "revoked": "已吊销", "suspended": "停业", "a_class_already_drawn": "A类本年度已被抽取",
              "frequency_cap": "本年度抽取次数已达上限"}


@dataclass
class Draw:
    seq: int
    announced: dict | None = None
    frozen: dict | None = None
    record: dict | None = None
    superseded: dict | None = None


@dataclass
class Task:
    task_id: str
    year: int
    announced: dict | None = None
    draws: dict[int, Draw] = field(default_factory=dict)
    closed: dict | None = None
    results: list[dict] = field(default_factory=list)
    corrections: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))  # by USCC, oldest first

    def draw(self, seq: int) -> Draw:
        return self.draws.setdefault(seq, Draw(seq))


def site(connection: Connection) -> dict[str, str]:
    """Every file of the site but the two checkers."""
    register = public.still_public(publication_register(connection))
    follow_ups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for case in case_list(connection):
        shown = public.check(public.follow_up(
            lead_id=case["lead_id"], kind=case["kind"], task_id=case["task_id"], line={"task_code": case["task_code"]},
            uscc=case["uscc"], entity_name=case["entity_name"], result_category=case["category"],
            due_at=datetime.fromisoformat(case["due_at"]) if case["due_at"] else None))
        follow_ups[shown["task_id"], shown["uscc"]].append(shown)

    plans, adjustments, tasks = [], [], {}
    for row in register:
        kind = row["kind"]
        if kind == "plan":
            plans.append(row)
        elif kind == "adjustment":
            adjustments.append(row)
        elif row.get("task_id"):
            _file(tasks.setdefault(row["task_id"], Task(row["task_id"], row["year"])), row)

    units = Units(unit_names(connection))
    files = {"index.html": _index(plans, adjustments, tasks, units)}
    by_entity: dict[str, list[tuple[Task, dict]]] = defaultdict(list)
    for task in tasks.values():
        files[f"tasks/{_name(task.task_id)}.html"] = _task_page(task, follow_ups, units)
        for d in task.draws.values():
            if d.record:
                files[f"tasks/{_name(task.task_id)}-draw-{d.seq}.json"] = _json(d.record)
        if task.closed and task.closed.get("state") == "closed":
            files[f"tasks/{_name(task.task_id)}-selected.txt"] = "".join(f"{u}\n" for u in task.closed["selected"])
        for result in task.results:
            by_entity[result["uscc"]].append((task, result))
    for uscc, results in by_entity.items():
        files[f"entities/{uscc}.html"] = _entity_page(uscc, results, follow_ups, units)
    return files


@dataclass(frozen=True)
class Units:
    """The directory's unit names: people read 景德镇市昌江区市场监督管理局, not 360202-SCJ. A code the
    directory never had (a partner from another department) is shown as it is."""

    names: Mapping[str, str]

    def __call__(self, code: str) -> str:
        return self.names.get(code, code)


NOTICE_KEYS_SLOT = '<script type="application/json" id="notice-keys">{}</script>'


def notice_check_page(template: str, keys: Mapping[str, bytes]) -> str:
    """notice-check.html with the published keys ({key id: base64url raw public key}) written into it:
    inline, since a page opened from file:// may fetch nothing."""
    if template.count(NOTICE_KEYS_SLOT) != 1:
        raise ValueError("notice-check.html: the keys slot is missing")
    table = json.dumps({kid: b64url(raw) for kid, raw in sorted(keys.items())}).replace("<", "\\u003c")
    return template.replace(NOTICE_KEYS_SLOT, NOTICE_KEYS_SLOT.replace("{}", table))


def _file(task: Task, row: dict) -> None:
    """Put one register row where its task page shows it."""
    if row["kind"] == "result":
        task.results.append(row)
    elif row["kind"] == "correction":
        task.corrections[row["uscc"]].append(row)
    elif row["kind"] == "task" and "commitment" in row:
        task.announced = row
        task.draw(row["draw_seq"]).announced = row
    elif row["kind"] == "task":
        task.closed = row
    elif row.get("protocol") == draw.PROTOCOL:
        task.draw(row["draw_seq"]).record = row
    elif row.get("state") == "superseded":
        task.draw(row["draw_seq"]).superseded = row
    elif "population_digest" in row:
        task.draw(row["draw_seq"]).frozen = row


def _name(task_id: str) -> str:
    """A task's file name: task ids are [A-Za-z0-9._-]; the prefix keeps `..` a plain name."""
    return f"t-{task_id}"


def _json(record: dict) -> str:
    """The draw record as `draw export` writes it, minus the register's own columns, for verify.html's #record."""
    register_columns = {"publication_id", "kind", "published_at", "year", "plan_code", "uscc", "category", "unit"}
    kept = {k: v for k, v in record.items() if k not in register_columns}
    return json.dumps(kept, ensure_ascii=False, sort_keys=True, indent=2) + "\n"


# --- pages -----------------------------------------------------------------------------------------
def _index(plans: list[dict], adjustments: list[dict], tasks: dict[str, Task], units: Units) -> str:
    years = sorted({p["year"] for p in plans} | {t.year for t in tasks.values()}, reverse=True)
    body = ['<p class="lead">本站公示随机抽查的年度计划、任务、抽取记录与检查结果。抽取结果可在本机浏览器中'
            '<a href="verify.html">核验</a>；检查通知书上的二维码可<a href="notice-check.html">验真</a>。</p>']
    for year in years:
        body.append(f"<h2>{year}年度</h2>")
        year_plans = [p for p in plans if p["year"] == year]
        if year_plans:
            body.append("<h3>抽查工作计划</h3>")
            body.append(_table(("计划编号", "制定单位", "任务数", "公示时间", "计划文件摘要"), [
                (p["plan_code"], units(p["owner_unit"]), str(len(p["tasks"])), _when(p["published_at"]),
                 _code(p["document_sha256"])) for p in year_plans], raw=(4,)))
        year_adjustments = [a for a in adjustments if a["year"] == year]
        if year_adjustments:
            body.append("<h3>计划调整</h3>")
            body.append(_table(("计划编号", "调整", "任务", "理由", "公示时间"), [
                (a["plan_code"], ADJUSTMENTS.get(a["adjustment"], a["adjustment"]), a["task_id"], a["reason"],
                 _when(a["published_at"])) for a in year_adjustments]))
        year_tasks = sorted((t for t in tasks.values() if t.year == year), key=lambda t: t.task_id)
        if year_tasks:
            body.append("<h3>抽查任务</h3>")
            body.append(_table(("任务", "实施单位", "检查期间", "状态"), [
                (f'<a href="tasks/{_name(t.task_id)}.html">{_task_title(t)}</a>',
                 escape(units(t.announced["unit"])) if t.announced else "",
                 escape(_window(t)), escape(_state(t))) for t in year_tasks], raw=(0, 1, 2, 3)))
    return _page("双随机、一公开 · 抽查信息公示", "\n".join(body), root="")


def _task_page(task: Task, follow_ups: Mapping[tuple[str, str], list[dict]], units: Units) -> str:
    a = task.announced or {}
    body = ['<p><a href="../index.html">← 返回公示首页</a></p>']
    if a:
        body.append(_facts((("任务编号", a["task_code"]), ("任务名称", a["name"]), ("实施单位", units(a["unit"])),
                            ("联合检查单位", "、".join(map(units, a["partner_units"])) or "无"), ("检查事项", "、".join(a["items"])),
                            ("检查期间", _window(task)), ("抽查比例", _ratios(a["ratios"])), ("状态", _state(task)))))
    body.append("<h2>抽取记录</h2>")
    body.append('<p class="note">承诺值在抽取前公示；抽取时公开随机数（nonce），任何人可核验其与承诺值一致、'
                '种子由公示的数据计算得出。下载记录后可在<a href="../verify.html">核验页</a>中核验。</p>')
    for seq in sorted(task.draws):
        body.append(_draw_section(task, task.draws[seq]))
    if task.closed:
        body.append(_selection(task))
    body.append("<h2>检查结果</h2>")
    if task.results:
        body.append(_results_table([(r, task.corrections.get(r["uscc"], []),
                                     follow_ups.get((task.task_id, r["uscc"]), [])) for r in task.results],
                                   units, entity_links=True))
    else:
        body.append("<p>尚无公示的检查结果。</p>")
    return _page(_plain_title(task), "\n".join(body), root="../")


def _draw_section(task: Task, d: Draw) -> str:
    state = "已作废" if d.superseded else ("已抽取" if d.record else "待抽取")
    out = [f'<section class="draw" id="draw-{d.seq}"><h3>第{d.seq}次抽取 <span class="tag">{state}</span></h3>']
    facts = []
    if d.announced:
        facts += [("承诺值（commitment）", _code(d.announced["commitment"])),
                  ("外部随机源", escape(_entropy_source(d.announced["entropy_source"]))),
                  ("公告时间", escape(_when(d.announced["published_at"])))]
    if d.frozen:
        facts += [("名单冻结时间", escape(_when(d.frozen["frozen_at"]))),
                  ("抽查对象总数", str(d.frozen["population"])),
                  ("名录摘要（population digest）", _code(d.frozen["population_digest"])),
                  ("排除", escape(_counts(d.frozen["exclusions"])))]
    r = d.record
    if r:
        if r.get("supersedes"):
            facts.append(("重新抽取原因", escape(r.get("reason") or "")))
        facts += [("外部随机数", _code(r["entropy"]) if r["entropy"] else "无"),
                  ("随机数（nonce）", _code(r["nonce"])), ("种子（seed）", _code(r["seed"])),
                  ("抽取结果摘要（selection digest）", _code(r["selection_digest"])),
                  ("抽取时间", escape(_when(r["published_at"]))),
                  ("记录文件", f'<a href="{_name(task.task_id)}-draw-{d.seq}.json">下载（JSON）</a>')]
    if d.superseded:
        facts += [("作废原因", escape(d.superseded.get("reason") or "")),
                  ("由此次取代", f'<a href="#draw-{d.superseded["superseded_by"]}">第{d.superseded["superseded_by"]}次抽取</a>')]
    out.append(_facts(facts, raw=True))
    if r:
        out.append(_table(("分层", "对象数", "比例", "抽取数"), [
            (s, str(v["population"]), v["ratio"], str(v["quota"])) for s, v in sorted(r["strata"].items())]))
    out.append("</section>")
    return "\n".join(out)


def _selection(task: Task) -> str:
    closed = task.closed
    if closed["state"] == "cancelled":
        return f"<h2>任务取消</h2><p>{escape(closed.get('reason') or '')}</p>"
    selected = closed["selected"]
    items = "".join(f"<li><code>{escape(u)}</code></li>" for u in selected)
    return (f"<h2>抽取名单（{len(selected)}户）</h2>"
            f'<p><a href="{_name(task.task_id)}-selected.txt">下载名单（每行一个统一社会信用代码）</a></p>'
            f'<ul class="uscc">{items}</ul>')


def _entity_page(uscc: str, results: list[tuple[Task, dict]], follow_ups, units: Units) -> str:
    name = results[0][1].get("entity_name") or WITHHELD
    body = ['<p><a href="../index.html">← 返回公示首页</a></p>',
            _facts((("市场主体", name), ("统一社会信用代码", uscc))), "<h2>检查结果</h2>",
            _results_table([(r, t.corrections.get(uscc, []), follow_ups.get((t.task_id, uscc), []))
                            for t, r in results], units, entity_links=False)]
    return _page(f"{name} · 抽查检查结果", "\n".join(body), root="../")


def _results_table(rows: list[tuple[dict, list[dict], list[dict]]], units: Units, *, entity_links: bool) -> str:
    shown = []
    for r, corrections, leads in rows:
        entity = escape(r.get("entity_name") or WITHHELD) + f"<br><code>{escape(r['uscc'])}</code>"
        if entity_links:
            entity = f'<a href="../entities/{escape(r["uscc"])}.html">{entity}</a>'
        task = f'<a href="../tasks/{_name(r["task_id"])}.html">{escape(r["task_code"])}</a>'
        later = "<br>".join(escape(FOLLOW_UPS.get(f["kind"], f["kind"]))
                            + (f"（期限 {escape(_when(f['due_at']))}）" if f.get("due_at") else "") for f in leads)
        shown.append((entity, task, _outcome(r, corrections), escape(r.get("check_date") or WITHHELD),
                      escape(units(r["unit"])),
                      later or "无", escape(_when(r["published_at"]))))
    return _table(("市场主体", "任务", "检查结果", "检查日期", "检查单位", "后续处置", "公示时间"), shown,
                  raw=range(7))


def _outcome(result: dict, corrections: list[dict]) -> str:
    """The result as it reads now; each correction below it with its date and reason, the first version kept."""
    withheld = f'<br><span class="note">{escape(result["withheld_note"])}</span>' if result.get("withheld") else ""
    if not corrections:
        return escape(result.get("category_zh") or WITHHELD) + withheld
    lines = [f"<strong>{escape(corrections[-1].get('category_zh') or WITHHELD)}</strong>"]
    previous = result.get("category_zh")
    for c in corrections:
        if c.get("category_zh") is None:  # the category is withheld (R23)
            change = "结果已更正"
        else:
            change = "结果未变" if c["category_zh"] == previous else f"原为“{escape(previous)}”"
        note = f"；说明：{escape(c['note'])}" if c.get("note") else ""
        lines.append(f'<span class="note">更正（{escape(c["corrected_on"])}）：{change}；'
                     f'理由：{escape(c["reason"])}{note}</span>')
        previous = c.get("category_zh")
    return "<br>".join(lines) + withheld


# --- pieces ----------------------------------------------------------------------------------------
def _task_title(task: Task) -> str:
    a = task.announced
    return f"{escape(a['task_code'])}<br>{escape(a['name'])}" if a else escape(task.task_id)


def _plain_title(task: Task) -> str:
    a = task.announced
    return f"{a['task_code']} {a['name']}" if a else task.task_id


def _state(task: Task) -> str:
    if task.closed:
        return TASK_STATES.get(task.closed["state"], task.closed["state"])
    if any(d.record and not d.superseded for d in task.draws.values()):
        return "已抽取，实施中"
    return "已公告，待抽取"


def _window(task: Task) -> str:
    a = task.announced
    return f"{a['starts']} 至 {a['ends']}" if a else ""


def _ratios(ratios: Mapping) -> str:
    if not isinstance(ratios, Mapping):
        return str(ratios)
    return "；".join(f"{k}：{_percent(v)}" for k, v in sorted(ratios.items()))


def _percent(ratio: object) -> str:
    try:
        return f"{float(draw.parse_ratio(ratio) * 100):.4g}%"
    except draw.DrawError:
        return str(ratio)


def _entropy_source(source: str) -> str:
    return "无（未指定外部随机源）" if source == draw.NO_ENTROPY else source


def _counts(counts: Mapping) -> str:
    return "；".join(f"{EXCLUSIONS.get(k, k)} {v}户" for k, v in sorted(counts.items())) or "无"


def _when(instant: str | None) -> str:
    """An ISO instant or date as Beijing time, to the minute."""
    if not instant:
        return ""
    if len(instant) == 10:
        return instant
    return datetime.fromisoformat(instant).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _code(text: str) -> str:
    return f"<code>{escape(text)}</code>"


def _facts(pairs, raw: bool = False) -> str:
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{v if raw else escape(str(v))}</dd>" for k, v in pairs)
    return f'<dl class="facts">{rows}</dl>'


def _table(head, rows, raw=()) -> str:
    raw = set(raw)
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(
        f'<td data-label="{escape(head[n])}">{cell if n in raw else escape(str(cell))}</td>'
        for n, cell in enumerate(row)) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table></div>'


def _page(title: str, body: str, *, root: str) -> str:
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{escape(title)}</title>
<style>
{CSS}</style>
</head>
<body>
<header><p class="site"><a href="{root}index.html">双随机、一公开 · 抽查信息公示</a></p><h1>{escape(title)}</h1></header>
<main>
{body}
</main>
<footer><p>本页为静态公示页面，不收集任何信息。<a href="{root}verify.html">抽取核验</a> · <a href="{root}notice-check.html">通知书验真</a></p></footer>
</body>
</html>
"""


CSS = """\
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.6 "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", sans-serif;
       color: #1b1b1b; background: #fafafa; }
header, main, footer { max-width: 60rem; margin: 0 auto; padding: 0 1rem; }
header { border-bottom: 3px solid #b71c1c; }
header .site { margin: .5rem 0 0; font-size: .9rem; }
h1 { font-size: 1.35rem; margin: .3rem 0 .6rem; }
h2 { font-size: 1.15rem; margin-top: 1.6rem; border-left: 4px solid #b71c1c; padding-left: .5rem; }
h3 { font-size: 1.02rem; }
a { color: #0d47a1; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .85em; overflow-wrap: anywhere; }
.lead, .note { color: #444; }
.tag { font-size: .8rem; background: #eee; border-radius: .3rem; padding: 0 .4rem; }
dl.facts { display: grid; grid-template-columns: minmax(7rem, 30%) 1fr; gap: .2rem .8rem; }
dl.facts dt { color: #555; } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { border: 1px solid #ddd; padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f1f1f1; }
ul.uscc { columns: 2; padding-left: 1.2rem; }
footer { margin-top: 2rem; font-size: .85rem; color: #666; }
@media (max-width: 40rem) {
  dl.facts { grid-template-columns: 1fr; } dl.facts dd { margin-bottom: .4rem; }
  thead { display: none; } table, tbody, tr, td { display: block; width: 100%; }
  tr { margin-bottom: .8rem; border: 1px solid #ddd; } td { border: 0; border-bottom: 1px solid #eee; }
  td::before { content: attr(data-label); display: block; font-size: .8rem; color: #666; }
  ul.uscc { columns: 1; }
}
"""
