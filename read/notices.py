"""The documents an entity receives, as PDF: the inspection notice (检查通知书) and the result notice
(检查结果告知书). Each carries the task code, the legal basis of its items, the team, and a QR code with
the signed dispatch token (domain.notices) that the public site's notice-check.html verifies offline.

Rendered by WeasyPrint from HTML; the CJK font (Noto, from fontconfig) is embedded as a subset, so the
PDF reads the same on a machine without it.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from html import escape

import qrcode
import qrcode.image.svg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from db.engine import Connection
from domain import notices
from domain.categories import category
from store import directory, targets

KINDS = {"inspection": "检查通知书", "result": "检查结果告知书"}
# A result notice's token stays checkable through the period to apply for administrative review
# (行政复议法 第二十条: sixty days from knowing of the act).
RESULT_VALIDITY = timedelta(days=60)


@dataclass(frozen=True)
class Notice:
    kind: str
    token: str
    pdf: bytes


def notice(connection: Connection, kind: str, task_id: str, uscc: str, *, key: Ed25519PrivateKey, issued: date,
           site_url: str | None = None) -> Notice:
    """The notice of `kind` for the target; LookupError when the task, target or team is not there, ValueError
    when a result notice is asked for before the result."""
    if kind not in KINDS:
        raise ValueError(f"notice kind {kind!r}: one of {', '.join(KINDS)}")
    line, _ = directory.task_line(connection, task_id)
    target = targets.target(connection, task_id, uscc)
    teams, _ = targets.current_teams(connection, task_id, uscc)
    if not teams:
        raise LookupError(f"target {task_id}/{uscc} has no team dispatched yet")
    if kind == "result" and target.category is None:
        raise ValueError(f"target {task_id}/{uscc} has no result yet")
    now = datetime.now(timezone.utc)
    members = [m for team in teams for m in team.inspectors]
    people = {row["inspector_id"]: row for team in teams for row in directory.inspectors_of(connection, team.unit, now)}
    valid_until = date.fromisoformat(line["ends"]) if kind == "inspection" else issued + RESULT_VALIDITY
    token = notices.sign(task_id=task_id, uscc=uscc, team=members, valid_until=valid_until, key=key)
    html = _document(kind, task_id=task_id, line=line, uscc=uscc, entity=directory.entity_name(connection, uscc) or uscc,
                     items=directory.items_of(connection, line["items"], now), team=[people.get(m) or {
                         "inspector_id": m, "name": "", "cert_no": ""} for m in members],
                     target=target, token=token, valid_until=valid_until, issued=issued, site_url=site_url,
                     unit=directory.unit_names(connection).get(line["unit"], line["unit"]))
    return Notice(kind=kind, token=token, pdf=pdf_of(html))


def qr_svg(text: str) -> str:
    """The QR code of `text` as an SVG data URI (pure Python: no image library)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2)
    code.add_data(text)
    svg = code.make_image(image_factory=qrcode.image.svg.SvgPathImage).to_string()
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def _document(kind: str, *, task_id: str, line: dict, uscc: str, entity: str, items, team, target, token: str, valid_until: date,
              issued: date, site_url: str | None, unit: str) -> str:
    qr_text = f"{site_url.rstrip('/')}/notice-check.html#{token}" if site_url else token
    items_rows = "".join(f"<tr><td>{escape(i['item_code'])} {escape(i['name'])}</td><td>{escape(i['legal_basis'])}</td></tr>"
                         for i in items)
    team_rows = "".join(f"<tr><td>{escape(p['name'])}</td><td>{escape(p['cert_no'])}</td><td>{escape(p['inspector_id'])}</td></tr>"
                        for p in team)
    if kind == "inspection":
        body = (f"<p>根据《市场监督管理行政执法责任制规定》《市场监督管理随机抽查工作细则》及本单位随机抽查工作计划，"
                f"你单位经随机抽取被列为本次抽查对象。本单位将于 {escape(line['starts'])} 至 {escape(line['ends'])} "
                f"期间依法对你单位开展检查，请予配合，如实提供有关材料。</p>")
    else:
        found = category(target.category)
        body = (f"<p>本单位于 {target.check_date.isoformat()} 对你单位依法进行了检查，检查结果为："
                f"<strong>{escape(found.name_zh)}</strong>。检查结果将依法通过国家企业信用信息公示系统向社会公示。</p>"
                "<p>如对检查结果有异议，可自收到本告知书之日起六十日内依法申请行政复议，或者六个月内依法提起行政诉讼。</p>")
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{KINDS[kind]}</title>
<style>
  @page {{ size: A4; margin: 22mm 20mm; }}
  body {{ font-family: "Noto Serif CJK SC", "Noto Sans CJK SC", serif; font-size: 11.5pt; line-height: 1.7; }}
  h1 {{ text-align: center; font-size: 20pt; letter-spacing: .3em; margin: 0 0 2mm; }}
  .code {{ text-align: center; margin: 0 0 6mm; }}
  table {{ border-collapse: collapse; width: 100%; margin: 2mm 0 4mm; font-size: 10pt; }}
  th, td {{ border: .6pt solid #333; padding: 1.5mm 2mm; text-align: left; vertical-align: top; }}
  .check {{ display: flex; gap: 6mm; align-items: flex-start; margin-top: 6mm; }}
  .check img {{ width: 38mm; height: 38mm; }}
  .token {{ font-family: "DejaVu Sans Mono", monospace; font-size: 6pt; word-break: break-all; color: #444; }}
  .sign {{ text-align: right; margin-top: 10mm; }}
</style></head><body>
<h1>{KINDS[kind]}</h1>
<p class="code">{escape(line['task_code'])}</p>
<p>{escape(entity)}（统一社会信用代码：{escape(uscc)}）：</p>
{body}
<p>抽查任务：{escape(line['task_code'])} {escape(line['name'])}（任务编号 {escape(task_id)}）</p>
<table><thead><tr><th>检查事项</th><th>检查依据</th></tr></thead><tbody>{items_rows}</tbody></table>
<p>检查人员（应当主动出示执法证件）：</p>
<table><thead><tr><th>姓名</th><th>执法证号</th><th>执法人员编号</th></tr></thead><tbody>{team_rows}</tbody></table>
<div class="check"><img src="{qr_svg(qr_text)}" alt="验真二维码">
<div><p>扫描二维码，或将下方内容粘贴到抽查信息公示网站的“通知书验真”页面，可离线核验上述检查人员确由本单位为本任务派往你单位。
有效期至 {valid_until.isoformat()}。核验不通过的，请勿配合，并向当地市场监督管理部门核实。</p>
<p class="token">{escape(token)}</p></div></div>
<p class="sign">{escape(unit)}<br>{issued.year}年{issued.month}月{issued.day}日</p>
</body></html>
"""


def pdf_of(html: str) -> bytes:
    """The HTML as PDF, fonts embedded. WeasyPrint is imported here, not at the top: it loads the system's
    pango when imported, and a machine without it should lose the notices, not every other verb."""
    try:
        import weasyprint
    except OSError as error:
        raise RuntimeError("PDF notices need the system libraries pango and a CJK font (Debian: apt-get install "
                           f"libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk): {error}") from None
    return weasyprint.HTML(string=html).write_pdf()
