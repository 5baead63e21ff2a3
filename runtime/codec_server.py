"""`spotcheck codec-server`: the Temporal codec-server protocol over the payload codec (docs/codec.md).

The Web UI (`--codec-endpoint`, or the UI's "Codec Server" setting) and the `temporal` CLI
(`--codec-endpoint`) cannot read encrypted payloads themselves: they POST them here.

    POST <endpoint>/decode   {"payloads": [<Payload in proto JSON>, …]}  →  {"payloads": [decrypted …]}
    POST <endpoint>/encode   the same, encrypting with the first configured key
    OPTIONS                  CORS preflight, for the configured UI origins only
    GET  /health             200 "ok"

Every encode and decode needs `Authorization: Bearer <SPOTCHECK_CODEC_TOKEN>` (401 otherwise; the
`temporal` CLI's `--codec-auth`, or the proxy in front of the Web UI, sends it), and a browser may call
only from a configured Web UI origin (403 otherwise; no wildcard).

A path that ends with /decode or /encode is accepted, so an endpoint with a namespace prefix works.
Standard library only (http.server, one thread per request); the codec is CPU-only. Whoever holds the
token can decrypt: bind it to 127.0.0.1 (the default) or a private network as well.
"""
from __future__ import annotations

import hmac
import json
import signal
import threading
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from runtime.codec import AesGcmCodec, CodecKeyError

DEFAULT_PORT = 8081
DEFAULT_CORS_ORIGIN = "http://127.0.0.1:8233"  # the embedded server's Web UI (`spotcheck server`)
MIN_TOKEN = 32  # characters: a token someone made, not a word someone chose
MAX_BODY = 64 * 1024 * 1024  # Temporal caps one payload at 2 MiB; a UI page of events stays far below this
ALLOWED_HEADERS = "content-type,x-namespace,authorization"

log = structlog.get_logger()


class _Handler(BaseHTTPRequestHandler):
    server: _CodecHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "spotcheck-codec"

    # --- routes ---
    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server's naming
        self._reply(HTTPStatus.NO_CONTENT if self._origin_allowed() else HTTPStatus.FORBIDDEN, b"", preflight=True)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/").endswith("/health"):
            self._reply(HTTPStatus.OK, b"ok", content_type="text/plain")
        else:
            self._error(HTTPStatus.NOT_FOUND, "use POST …/encode or POST …/decode")

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0].rstrip("/")
        codec = self.server.codec
        if path.endswith("/decode"):
            apply = codec.decode_sync
        elif path.endswith("/encode"):
            apply = codec.encode_sync
        else:
            self._error(HTTPStatus.NOT_FOUND, "use POST …/encode or POST …/decode")
            return
        if not self._origin_allowed():
            self._error(HTTPStatus.FORBIDDEN, f"origin {self.headers.get('Origin')!r} is not allowed (--cors-origin)")
            return
        if not self._authorized():
            self._error(HTTPStatus.UNAUTHORIZED, "send Authorization: Bearer <SPOTCHECK_CODEC_TOKEN>",
                        {"WWW-Authenticate": 'Bearer realm="spotcheck-codec"'})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > 0 else HTTPStatus.BAD_REQUEST,
                        f"a body of 0..{MAX_BODY} bytes with a Content-Length is expected")
            return
        body = self.rfile.read(length)
        try:
            payloads = json_format.Parse(body or b"{}", Payloads())
        except (json_format.ParseError, UnicodeDecodeError) as error:
            self._error(HTTPStatus.BAD_REQUEST, f'expected {{"payloads": [...]}} in proto JSON: {error}')
            return
        try:
            result = Payloads(payloads=apply(payloads.payloads))
        except CodecKeyError as error:
            self._error(HTTPStatus.BAD_REQUEST, str(error))
            return
        self._reply(HTTPStatus.OK, json_format.MessageToJson(result).encode())

    # --- helpers ---
    def _origin_allowed(self) -> bool:
        """A browser's call from a configured Web UI origin, or a call with no Origin (not a browser's)."""
        origin = self.headers.get("Origin")
        return origin is None or origin in self.server.cors_origins

    def _authorized(self) -> bool:
        scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
        # compared in constant time, as bytes: a header's non-ASCII text is no reason for an error
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8", "replace"),
                                                                  self.server.token)

    def _cors_headers(self, preflight: bool) -> None:
        origin = self.headers.get("Origin")
        if origin is None or not self._origin_allowed():
            return
        self.send_header("Access-Control-Allow-Origin", origin)
        self.send_header("Access-Control-Allow-Credentials", "true")
        self.send_header("Vary", "Origin")
        if preflight:
            self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
            self.send_header("Access-Control-Max-Age", "600")

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str = "application/json",
               preflight: bool = False, close: bool = False, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self._cors_headers(preflight)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")  # http.server then closes it after this reply
        if body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> None:
        # the request body may be unread: close, never parse it as the next request
        self._reply(status, json.dumps({"error": message}, ensure_ascii=False).encode(), close=True, headers=headers)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        pass  # one structured line per request instead (log_request); never a payload

    def log_request(self, code="-", size="-") -> None:
        log.info("codec request", method=self.command, path=self.path.split("?", 1)[0],
                 status=int(code) if str(code).isdigit() else code, namespace=self.headers.get("X-Namespace"))


class _CodecHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], codec: AesGcmCodec, token: str, cors_origins: Iterable[str]) -> None:
        self.codec = codec
        self.token = token.encode()
        self.cors_origins = frozenset(o.rstrip("/") for o in cors_origins)
        super().__init__(address, _Handler)


class CodecServer:
    """The HTTP codec server; `start()` serves from a background thread, `serve()` until SIGINT/SIGTERM."""

    def __init__(self, codec: AesGcmCodec, token: str | None, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 cors_origins: Iterable[str] = (DEFAULT_CORS_ORIGIN,)) -> None:
        if not token or len(token) < MIN_TOKEN or not token.isascii() or not token.isprintable():
            raise ValueError(f"SPOTCHECK_CODEC_TOKEN: the codec server needs a bearer token of at least {MIN_TOKEN}"
                             " printable ASCII characters (e.g. `openssl rand -hex 32`)")
        cors_origins = list(cors_origins)
        if not cors_origins or any(o.strip() in ("*", "") for o in cors_origins):
            raise ValueError("--cors-origin: name the Web UI's origin (scheme://host:port); no wildcard")
        self._httpd = _CodecHTTPServer((host, port), codec, token, cors_origins)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"

    def start(self) -> CodecServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="codec-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> CodecServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve(self) -> None:
        """Serve until SIGINT or SIGTERM (PID 1 in a container ignores an unhandled SIGTERM)."""
        stop = threading.Event()
        previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            codec = self._httpd.codec
            log.info("codec server serving", url=self.url, encrypt_key_id=codec.encrypt_key_id,
                     key_ids=codec.key_ids, cors_origins=sorted(self._httpd.cors_origins))
            while not stop.wait(1.0):
                pass
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.stop()
            log.info("codec server stopped")


__all__ = ["CodecServer", "DEFAULT_CORS_ORIGIN", "DEFAULT_PORT"]
