// The app shell, kept so the app opens with no network. API calls are not touched: the page keeps its own
// copies of what it read, and its outbox of what it must send.
const SHELL = "spotcheck-field-v1";
const FILES = ["./", "index.html", "style.css", "app.js", "api.js", "outbox.js", "ui.js", "views.js",
               "categories.json", "manifest.webmanifest"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n !== SHELL).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

// Network first, so a new version is picked up as soon as there is a network; the kept copy otherwise.
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin || !url.pathname.startsWith("/app/")) return;
  event.respondWith(fetch(event.request)
    .then((answer) => {
      if (answer.ok) {
        const copy = answer.clone();
        caches.open(SHELL).then((cache) => cache.put(event.request, copy));
      }
      return answer;
    })
    .catch(() => caches.match(event.request, { ignoreSearch: true })
      .then((kept) => kept || caches.match("./"))));
});
