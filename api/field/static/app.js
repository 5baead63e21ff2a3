// The shell: who is signed in, the pages by role, the outbox panel, the network mark, and when to send.
import { Offline, Problem, token } from "./api.js";
import * as outbox from "./outbox.js";
import { KINDS, fill, h, notice, problemBox, when } from "./ui.js";
import * as views from "./views.js";

const view = document.getElementById("view");
const RETRY_MS = 5000;

const PAGES = [  // [route, label, roles that see it in the menu]
  ["targets", "我的任务", ["inspector"]],
  ["review", "待审核", ["reviewer"]],
  ["supervise", "调度", ["supervisor"]],
  ["alerts", "预警", ["inspector", "reviewer", "supervisor"]],
];

function home(roles) {
  return PAGES.find(([, , who]) => who.some((r) => roles.includes(r)))?.[0] || "targets";
}

function navFor(who, route) {
  const nav = document.getElementById("nav");
  const links = PAGES.filter(([, , roles]) => roles.some((r) => who.roles.includes(r)))
    .map(([name, label]) => h("a", { href: `#/${name}`, "aria-current": name === route ? "page" : false }, label));
  fill(nav, ...links);
  nav.hidden = false;
  fill(document.getElementById("who"), who.id, " ",
    h("a", { href: "#/logout", id: "logout" }, "退出"));
}

async function route() {
  const [name, ...args] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (name === "logout") return views.signOut();
  if (!token.get() || name === "login") {
    document.getElementById("nav").hidden = true;
    fill(document.getElementById("who"));
    return views.loginPage(view, async () => {
      const who = await views.me();
      location.hash = `#/${home(who.roles)}`;
    });
  }
  document.body.dataset.page = name || "home";
  try {
    const who = await views.me();
    navFor(who, name);
    switch (name) {
      case "target": return await views.targetPage(view, args[0], args[1]);
      case "review": return await views.reviewPage(view);
      case "supervise": return await views.supervisePage(view);
      case "alerts": return await views.alertsPage(view);
      case "targets": return await views.targetsPage(view);
      default: location.hash = `#/${home(who.roles)}`;
    }
  } catch (error) {
    if (error instanceof Problem && error.status === 401) {
      token.clear();
      notice("登录已失效，请重新登录；未发送的记录会保留", true);
      location.hash = "#/login";
      return;
    }
    const said = error instanceof Offline ? "网络不可用，且本机没有这一页的数据" : error.message;
    fill(view, h("h1", {}, "无法显示"), problemBox({ message: said }));
  }
}

async function showOutbox() {
  const entries = await outbox.entries();
  const panel = document.getElementById("outbox");
  const refused = entries.filter((e) => e.state === "refused");
  panel.dataset.pending = entries.length - refused.length;
  panel.dataset.refused = refused.length;
  panel.hidden = entries.length === 0;
  fill(document.getElementById("outbox-list"), ...entries.map((e) => h("li",
    { class: `entry ${e.state}`, "data-kind": e.kind, "data-state": e.state, "data-key": e.key },
    h("span", { class: `tag ${e.state}` }, e.state === "refused" ? "被拒绝" : "待发送"),
    h("strong", {}, KINDS[e.kind] || e.kind), " ", e.uscc,
    e.photos.length ? h("span", { class: "muted" }, `（照片 ${e.photos.length} 张）`) : null,
    h("div", { class: "muted" }, `记录于 ${when(e.made_at)}`),
    e.problem && h("div", { class: "problem detail", role: "alert" }, e.problem.detail),
    e.state === "refused" && h("div", { class: "actions" },
      h("button", { class: "secondary", onclick: () => outbox.retry(e.seq) }, "重新发送"),
      h("button", { class: "danger", onclick: () => outbox.drop(e.seq) }, "放弃")))));
}

function showNetwork() {
  const mark = document.getElementById("net");
  mark.dataset.online = String(navigator.onLine);
  mark.textContent = navigator.onLine ? "在线" : "离线";
}

window.addEventListener("hashchange", route);
window.addEventListener("outbox-changed", showOutbox);
window.addEventListener("outbox-sent", (event) => {
  const { entry, answer } = event.detail;
  notice(`${KINDS[entry.kind]}已送达：${answer?.message || "完成"}`);
  showOutbox();
  if (location.hash.includes(encodeURIComponent(entry.uscc)) || location.hash.includes(entry.uscc)) route();
});
window.addEventListener("outbox-waiting", (event) => {
  const { error } = event.detail;
  if (error instanceof Problem && error.status === 401) notice("登录已失效：请重新登录，未发送的记录会在登录后发送", true);
});
window.addEventListener("online", () => { showNetwork(); outbox.flush(); });
window.addEventListener("offline", showNetwork);
setInterval(() => { if (token.get()) outbox.flush(); }, RETRY_MS);

if ("serviceWorker" in navigator) navigator.serviceWorker.register("sw.js").catch(() => {});
showNetwork();
showOutbox();
route().then(() => outbox.flush());
