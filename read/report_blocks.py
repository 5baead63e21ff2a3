"""The report's building blocks: the page, its style, charts as inline SVG, tables, local times. No data."""
from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from typing import Any, Iterable

from domain.workdays import SHANGHAI

COLORS = {"ok": "#2e7d4f", "late": "#d08a1e", "missed": "#c0392b", "bar": "#2f6db5", "problem": "#c0392b",
          "open": "#d08a1e", "closed": "#2e7d4f", "track": "#e6eaf0"}

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


def document(year: int, body: str) -> str:
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


def gauge(value: float | None) -> str:
    width = 220
    filled = 0 if value is None else round(min(max(value, 0.0), 1.0) * width)
    return (f'<svg width="{width}" height="8" viewBox="0 0 {width} 8" role="img" aria-hidden="true">'
            f'<rect width="{width}" height="8" rx="4" fill="{COLORS["track"]}"/>'
            f'<rect width="{filled}" height="8" rx="4" fill="{COLORS["bar"]}"/></svg>')


# --- plans and adjustments ---------------------------------------------------------------------------


def hbar_chart(bars: list[tuple[str, str, int, str]], chart_id: str) -> str:
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


def stacked_bar(segments: list[tuple[str, int, str]], chart_id: str) -> str:
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


def grouped_stack_chart(bars: list[tuple[str, str, list[tuple[int, str]]]], chart_id: str) -> str:
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
def table(headers: Iterable[str], rows: list[str], empty: str, table_id: str) -> str:
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


def local(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:  # SQLite gives back UTC wall time
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def local_text(value: Any) -> str:
    if isinstance(value, datetime):
        return local(value)
    if isinstance(value, str) and value:
        try:
            return local(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return value
    return ""
