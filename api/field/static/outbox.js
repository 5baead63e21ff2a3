// The outbox: every step a person takes (signals, checks with their photos, results, reviews, assignments) is
// written to IndexedDB first, with its Idempotency-Key fixed at the moment the button was pressed, and sent from
// there in order. A network failure leaves it waiting; a refusal keeps it, with the rule's words, for the
// person to send again or drop. A retry under the same key is answered once by the server (api.md).
import { Offline, Problem, post, targetPath, upload } from "./api.js";

const DB = "spotcheck-field";
let opened = null;

function db() {
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore("outbox", { keyPath: "seq", autoIncrement: true });
      request.result.createObjectStore("photos", { keyPath: "id", autoIncrement: true })
        .createIndex("draft", "draft");
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return opened;
}

async function tx(store, mode, work) {
  const database = await db();
  return new Promise((resolve, reject) => {
    const transaction = database.transaction(store, mode);
    const result = work(transaction.objectStore(store));
    transaction.oncomplete = () => resolve(result.result ?? result);
    transaction.onerror = () => reject(transaction.error);
  });
}

const changed = () => window.dispatchEvent(new Event("outbox-changed"));

export const entries = () => tx("outbox", "readonly", (s) => s.getAll());

// `kind`: accept | arrive | check | result | review | assign; `photos`: [{blob, name, type, sha256, key}].
export async function add(kind, taskId, uscc, body = null, photos = []) {
  const entry = { kind, task_id: taskId, uscc, body, photos, key: crypto.randomUUID(), state: "pending",
                  problem: null, made_at: new Date().toISOString() };
  entry.seq = await tx("outbox", "readwrite", (s) => s.add(entry));
  changed();
  flush();
  return entry;
}

const put = (entry) => tx("outbox", "readwrite", (s) => s.put(entry));

export async function drop(seq) {
  await tx("outbox", "readwrite", (s) => s.delete(seq));
  changed();
}

// Send again as it was, under the same key: the server released it when it refused.
export async function retry(seq) {
  const entry = (await entries()).find((e) => e.seq === seq);
  if (!entry) return;
  Object.assign(entry, { state: "pending", problem: null });
  await put(entry);
  changed();
  flush();
}

async function deliver(entry) {
  const path = targetPath(entry.task_id, entry.uscc);
  for (const photo of entry.photos) {
    if (photo.uploaded) continue;
    const stored = await upload(`${path}/evidence`, photo.blob, photo.name, photo.key);
    if (stored.sha256 !== photo.sha256) throw new Problem(422, { detail: `照片 ${photo.name} 上传后摘要不一致` });
    photo.uploaded = true;
    await put(entry);
  }
  return post(`${path}/${entry.kind}`, entry.body ?? undefined, entry.key);
}

let flushing = null;

// In the order made. A target with a refused step sends nothing more until the person resolves it (its later
// steps build on it); a network failure, a lapsed login or a busy server stops the round until the next one.
export function flush() {
  flushing ??= (async () => {
    const blocked = new Set();
    for (const entry of await entries()) {
      const target = `${entry.task_id}/${entry.uscc}`;
      if (entry.state === "refused") { blocked.add(target); continue; }
      if (blocked.has(target)) continue;
      try {
        const answer = await deliver(entry);
        await drop(entry.seq);
        window.dispatchEvent(new CustomEvent("outbox-sent", { detail: { entry, answer } }));
      } catch (error) {
        if (error instanceof Offline || (error instanceof Problem && error.transient)) {
          window.dispatchEvent(new CustomEvent("outbox-waiting", { detail: { entry, error } }));
          break;
        }
        Object.assign(entry, { state: "refused", problem: { status: error.status ?? 0, detail: error.message } });
        await put(entry);
        blocked.add(target);
        changed();
      }
    }
  })().finally(() => { flushing = null; });
  return flushing;
}

// Photos picked for a form not sent yet, kept across reloads with the form's draft.
export const draftPhotos = (draft) => tx("photos", "readonly", (s) => s.index("draft").getAll(draft));
export const keepPhoto = (draft, photo) => tx("photos", "readwrite", (s) => s.add({ ...photo, draft }));
export const dropPhoto = (id) => tx("photos", "readwrite", (s) => s.delete(id));
export async function clearPhotos(draft) {
  for (const photo of await draftPhotos(draft)) await dropPhoto(photo.id);
}
