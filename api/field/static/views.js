// The pages. Each renders into `main` from the API (or, offline, from the last answer seen); every step a person
// takes goes to the outbox, never straight to the network.
import { Problem, login, read, targetPath, token } from "./api.js";
import * as outbox from "./outbox.js";
import { ALERTS, KINDS, drafted, fill, forget, h, method, notice, problemBox, sha256, stage, when } from "./ui.js";

export async function me() {
  return (await read("/me")).data;
}

const staleNote = (stale) => stale && h("p", { class: "muted", "data-stale": "" }, "离线：显示的是上次同步的数据");
const overdueTag = (row) => row.overdue && h("span", { class: "tag overdue" }, "已逾期");
const targetLink = (row) => `#/target/${encodeURIComponent(row.task_id)}/${encodeURIComponent(row.uscc)}`;

function targetCard(row) {
  return h("div", { class: "card target", "data-uscc": row.uscc, "data-task": row.task_id },
    h("a", { class: "row", href: targetLink(row) },
      h("strong", {}, row.entity_name || row.uscc),
      h("div", { class: "muted" }, row.uscc),
      h("div", {}, h("span", { class: "tag" }, stage(row.stage)), overdueTag(row),
        h("span", { class: "muted" }, `公示期限 ${when(row.due)}`))));
}

function list(rows, empty) {
  return rows.length ? rows.map(targetCard) : [h("p", { class: "muted empty" }, empty)];
}

export function loginPage(view, done) {
  const user = h("input", { type: "text", name: "username", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const error = h("div");
  const form = h("form", { class: "card", id: "login" },
    h("label", {}, "账号（执法人员编号）"), user, h("label", {}, "密码"), password, error,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "登录")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    fill(error);
    try {
      await login(user.value.trim(), password.value);
      done();
    } catch (problem) {
      fill(error, problemBox(problem));
    }
  });
  fill(view, h("h1", {}, "登录"), form);
}

export async function targetsPage(view) {
  const { data, stale } = await read("/me/targets");
  fill(view, h("h1", {}, "我的检查任务"), staleNote(stale), ...list(data, "暂无任务"));
}

export async function reviewPage(view) {
  const { data, stale } = await read("/me/targets?stage=entered");
  fill(view, h("h1", {}, "待审核的检查结果"), staleNote(stale), ...list(data, "暂无待审核结果"));
}

export async function supervisePage(view) {
  const [unstaffed, all] = await Promise.all([read("/me/targets?stage=unstaffed"), read("/me/targets")]);
  const overdue = all.data.filter((row) => row.overdue);
  fill(view, h("h1", {}, "调度"), staleNote(unstaffed.stale || all.stale),
    h("h2", {}, `待配检查人员（${unstaffed.data.length}）`),
    h("div", { id: "unstaffed" }, ...list(unstaffed.data, "没有待配人员的对象")),
    h("h2", {}, `已逾期（${overdue.length}）`),
    h("div", { id: "overdue" }, ...list(overdue, "没有逾期的对象")));
}

export async function alertsPage(view) {
  const { data, stale } = await read("/me/alerts");
  const alerts = data.alerts.map((a) => h("div", { class: "card alert", "data-kind": a.kind },
    h("span", { class: `tag ${a.kind === "escalation" ? "overdue" : ""}` }, ALERTS[a.kind] || a.kind),
    h("strong", {}, a.uscc || a.task_id), h("div", {}, a.details), h("div", { class: "muted" }, when(a.at))));
  fill(view, h("h1", {}, "我的预警"), staleNote(stale),
    h("h2", {}, "提醒与督办"), ...(alerts.length ? alerts : [h("p", { class: "muted" }, "暂无提醒")]),
    h("h2", {}, "逾期对象"), ...list(data.overdue, "没有逾期的对象"));
}

// --- one target ---------------------------------------------------------------------------------------
export async function targetPage(view, taskId, uscc) {
  const path = targetPath(taskId, uscc);
  const [who, status, rows] = await Promise.all([me(), read(path), read(`/entities/${encodeURIComponent(uscc)}/inspections`)]);
  const s = status.data;
  const row = rows.data.find((r) => r.task_id === taskId) || {};
  const onTeam = s.teams.some((team) => team.inspectors.includes(who.id));
  const roles = new Set(who.roles);
  const done = ["approved", "follow_up", "closed", "cancelled"].includes(s.stage);
  fill(view,
    h("h1", {}, row.entity_name || uscc), staleNote(status.stale),
    h("div", { class: "card", id: "facts" }, h("dl", {},
      h("dt", {}, "信用代码"), h("dd", {}, uscc),
      h("dt", {}, "抽查任务"), h("dd", {}, taskId),
      h("dt", {}, "阶段"), h("dd", { id: "stage", "data-stage": s.stage }, stage(s.stage), " ", overdueTag(s)),
      h("dt", {}, "抽取方式"), h("dd", {}, s.kind === "targeted" ? "定向抽查" : "随机抽取"),
      h("dt", {}, "公示期限"), h("dd", {}, when(s.publication_due || row.due)),
      h("dt", {}, "检查方式"), h("dd", {}, s.methods.map(method).join("、")),
      h("dt", {}, "已退回"), h("dd", {}, `${s.returns} 次`))),
    h("h2", {}, "检查组"),
    h("div", { class: "card", id: "teams" }, ...(s.teams.length ? s.teams.map((team) => h("div", {},
      h("strong", {}, team.unit), "：", team.inspectors.map((id, i) => (i === 0 ? `${id}（组长）` : id)).join("、")))
      : [h("p", { class: "muted" }, "尚未配备检查人员")])),
    h("h2", {}, "检查事项清单"),
    h("div", { class: "card", id: "checklist" }, h("ol", {}, ...s.checklist.map((point) => h("li", {}, point)))),
    s.check && h("div", { class: "card", id: "check-record" }, h("h2", {}, "检查记录"), h("dl", {},
      h("dt", {}, "检查人员"), h("dd", {}, s.check.inspectors.join("、")),
      h("dt", {}, "检查方式"), h("dd", {}, method(s.check.method)),
      h("dt", {}, "出示证件"), h("dd", {}, s.check.certificates_shown ? "是" : "否"),
      h("dt", {}, "证据材料"), h("dd", {}, `${s.check.evidence.length} 份`),
      h("dt", {}, "检查时间"), h("dd", {}, when(s.check_at)))),
    s.result && h("div", { class: "card", id: "result-record" }, h("h2", {}, "检查结果"), h("dl", {},
      h("dt", {}, "结果类别"), h("dd", { "data-category": s.result.category }, s.result.category),
      h("dt", {}, "录入人"), h("dd", {}, s.result.inspector),
      h("dt", {}, "检查项"), h("dd", {}, Object.entries(s.result.findings)
        .map(([point, v]) => `${point}：${v === "pass" ? "合格" : "不合格"}`).join("；") || "—"),
      h("dt", {}, "说明"), h("dd", {}, s.result.note || "—"))),
    roles.has("inspector") && onTeam && !done && fieldForms(taskId, uscc, s),
    roles.has("reviewer") && !onTeam && s.stage === "entered" && reviewForm(taskId, uscc),
    roles.has("supervisor") && !done && assignForm(taskId, uscc, who, s),
  );
}

function fieldForms(taskId, uscc, s) {
  const draft = `${taskId}/${uscc}`;
  const signal = (kind) => async () => {
    await outbox.add(kind, taskId, uscc);
    notice(`${KINDS[kind]}：已记录，等待发送`);
  };
  return h("section", { id: "field" },
    h("div", { class: "actions" },
      h("button", { class: "secondary", id: "accept", onclick: signal("accept") }, "接收任务"),
      h("button", { class: "secondary", id: "arrive", onclick: signal("arrive") }, "到达现场")),
    checkForm(taskId, uscc, s, `${draft}/check`),
    resultForm(taskId, uscc, s, `${draft}/result`));
}

function checkForm(taskId, uscc, s, draft) {
  const team = s.teams.flatMap((t) => t.inspectors);
  const members = team.map((id) => drafted(h("input", { type: "checkbox", name: "members", value: id, checked: true }),
    `${draft}/member/${id}`));
  const how = drafted(h("select", { name: "method" }, ...s.methods.map((m) => h("option", { value: m }, method(m)))),
    `${draft}/method`);
  const certificates = drafted(h("input", { type: "checkbox", name: "certificates_shown" }), `${draft}/certificates`);
  const thumbs = h("div", { class: "thumbs", id: "photos" });
  const showPhotos = async () => {
    const photos = await outbox.draftPhotos(draft);
    fill(thumbs, ...photos.map((p) => h("figure", { "data-sha256": p.sha256 },
      h("img", { src: URL.createObjectURL(p.blob), alt: p.name }),
      h("figcaption", {}, p.name),
      h("button", { type: "button", class: "secondary", onclick: async () => { await outbox.dropPhoto(p.id); showPhotos(); } },
        "移除"))));
  };
  const pick = async (event) => {
    for (const file of event.target.files) {
      await outbox.keepPhoto(draft, { blob: file, name: file.name || "photo.jpg", type: file.type,
                                      sha256: await sha256(file) });
    }
    event.target.value = "";
    showPhotos();
  };
  showPhotos();
  const form = h("form", { class: "card", id: "check-form" },
    h("h2", {}, "现场检查记录"),
    h("label", {}, "参加检查人员"), ...members.map((box) => h("label", { class: "check" }, box, box.value)),
    h("label", {}, "检查方式"), how,
    h("label", { class: "check" }, certificates, "已出示执法证件"),
    h("label", {}, "现场照片"),
    h("div", { class: "photo-pick" },
      h("label", {}, "拍照", h("input", { type: "file", accept: "image/*", capture: "environment", id: "camera",
                                          onchange: pick })),
      h("label", {}, "从相册选择", h("input", { type: "file", accept: "image/*", multiple: true, id: "gallery",
                                               onchange: pick }))),
    thumbs,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "record-check" }, "记录检查")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const photos = (await outbox.draftPhotos(draft)).map(({ blob, name, type, sha256: digest }) =>
      ({ blob, name, type, sha256: digest, key: crypto.randomUUID() }));
    const body = { members: members.filter((b) => b.checked).map((b) => b.value), method: how.value,
                   certificates_shown: certificates.checked,
                   evidence: photos.map((p) => ({ sha256: p.sha256, name: p.name })) };
    await outbox.add("check", taskId, uscc, body, photos);
    await outbox.clearPhotos(draft);
    showPhotos();
    forget(draft);
    notice("检查记录已保存，等待发送");
  });
  return form;
}

let categories = null;
async function categoryOptions(select) {
  try {
    categories ??= await (await fetch("categories.json")).json();
  } catch {
    categories = [];
  }
  select.append(...categories.map((c) => h("option", { value: c.code }, c.name)));
}

function resultForm(taskId, uscc, s, draft) {
  const category = h("select", { name: "category", id: "category" });
  categoryOptions(category).then(() => drafted(category, `${draft}/category`));
  const findings = s.checklist.map((point) => drafted(h("select", { name: point, "data-point": point },
    h("option", { value: "pass" }, "合格"), h("option", { value: "fail" }, "不合格")), `${draft}/finding/${point}`));
  const note = drafted(h("textarea", { name: "note", maxlength: 4000 }), `${draft}/note`);
  const form = h("form", { class: "card", id: "result-form" },
    h("h2", {}, "录入检查结果"),
    h("label", {}, "结果类别"), category,
    h("label", {}, "检查事项"),
    ...findings.map((select) => h("div", { class: "finding" }, h("span", {}, select.name), select)),
    h("label", {}, "说明"), note,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "enter-result" }, "提交结果")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { category: category.value, findings: Object.fromEntries(findings.map((f) => [f.name, f.value])),
                   note: note.value };
    await outbox.add("result", taskId, uscc, body);
    forget(draft);
    notice("检查结果已保存，等待发送");
  });
  return form;
}

function reviewForm(taskId, uscc) {
  const draft = `${taskId}/${uscc}/review`;
  const note = drafted(h("textarea", { name: "return", id: "return-note", maxlength: 4000 }), `${draft}/note`);
  const error = h("div");
  const send = (body, said) => async () => {
    await outbox.add("review", taskId, uscc, body);
    forget(draft);
    notice(said);
  };
  return h("section", { class: "card", id: "review-form" }, h("h2", {}, "审核"),
    h("label", {}, "退回说明"), note, error,
    h("div", { class: "actions" },
      h("button", { id: "approve", onclick: send({ approve: true }, "审核通过，等待发送") }, "通过"),
      h("button", { class: "danger", id: "return", onclick: () => {
        if (!note.value.trim()) return fill(error, problemBox(new Problem(422, { detail: "退回需填写说明" })));
        return send({ return: note.value }, "已退回，等待发送")();
      } }, "退回")));
}

function assignForm(taskId, uscc, who, s) {
  const draft = `${taskId}/${uscc}/assign`;
  const unit = drafted(h("input", { type: "text", name: "unit", id: "assign-unit", value: s.teams[0]?.unit || who.unit || "" }),
    `${draft}/unit`);
  const inspectors = drafted(h("input", { type: "text", name: "inspectors", id: "assign-inspectors",
                                          placeholder: "执法人员编号，以逗号分隔" }), `${draft}/inspectors`);
  const reason = drafted(h("textarea", { name: "reason", id: "assign-reason", maxlength: 4000 }), `${draft}/reason`);
  const form = h("form", { class: "card", id: "assign-form" },
    h("h2", {}, s.teams.length ? "调整检查组" : "指派检查组"),
    h("label", {}, "执法单位"), unit, h("label", {}, "检查人员（组长在前）"), inspectors,
    h("label", {}, "理由（记录在案）"), reason,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "assign" }, "指派")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { unit: unit.value.trim(), inspectors: inspectors.value.split(/[\s,，、]+/).filter(Boolean),
                   reason: reason.value };
    await outbox.add("assign", taskId, uscc, body);
    forget(draft);
    notice("指派已保存，等待发送");
  });
  return form;
}

export function signOut() {
  token.clear();
  location.hash = "#/login";
}
