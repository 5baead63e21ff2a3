// Small DOM helpers and the interface's words.
const present = (children) => children.flat().filter((c) => c !== null && c !== undefined && c !== false);

// Replace a node's children; a `cond && node` that is false leaves nothing behind.
export function fill(node, ...children) {
  node.replaceChildren(...present(children));
  return node;
}

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...present(children));
  return node;
}

export function notice(text, problem = false) {
  const box = document.getElementById("notice");
  box.textContent = text;
  box.className = problem ? "problem" : "";
  box.hidden = false;
}

export const STAGES = {
  dispatched: "已派发", in_progress: "检查中", unstaffed: "待配检查人员", checked: "已检查", entered: "待审核",
  approved: "已审核", follow_up: "后续处置", closed: "已办结", cancelled: "已撤销",
};
export const METHODS = { document: "书面检查", online: "网络监测", onsite: "实地核查", entrusted: "委托专业机构" };
export const KINDS = {
  accept: "接收任务", arrive: "到达现场", check: "检查记录", result: "检查结果", review: "审核", assign: "指派检查组",
};
export const ALERTS = { reminder: "提醒", escalation: "督办", notice: "通知" };

export const stage = (code) => STAGES[code] || code;
export const method = (code) => METHODS[code] || code;

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString("zh-CN", { hour12: false });
}

export function problemBox(error) {
  return h("div", { class: "problem", role: "alert" }, error.message);
}

// A form field whose value outlives a reload: kept in localStorage under `draft` as the person types.
export function drafted(node, draft) {
  const key = `spotcheck.draft:${draft}`;
  const saved = localStorage.getItem(key);
  if (saved !== null) {
    if (node.type === "checkbox") node.checked = saved === "true"; else node.value = saved;
  }
  const keep = () => localStorage.setItem(key, node.type === "checkbox" ? String(node.checked) : node.value);
  node.addEventListener("input", keep);
  node.addEventListener("change", keep);
  return node;
}

export function forget(prefix) {
  for (const key of Object.keys(localStorage)) {
    if (key.startsWith(`spotcheck.draft:${prefix}`)) localStorage.removeItem(key);
  }
}

export async function sha256(blob) {
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
