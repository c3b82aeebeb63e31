"""HTTPS front end: PVE's wire protocol on top of `http.server` (proxmox-api.md §2).

- the HTTP reason phrase carries the error message; 400 bodies carry ``errors``;
- 401 answers have an empty body and are delayed (``--auth-fail-delay``, PVE: 3 s);
- responses >= 400 close the connection; no ``Set-Cookie`` ever;
- the TLS handshake runs in the request thread so a stuck client cannot block ``accept``.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from hatui.lab.pve import api
from hatui.lab.pve import schema as S
from hatui.lab.pve.auth import Auth
from hatui.lab.pve.cluster import ApiError, Cluster

log = logging.getLogger("hatui.lab.pve.http")

API_PREFIX = "/api2/json"
MAX_BODY = 4 * 1024 * 1024


class App:
    def __init__(self, cluster: Cluster, auth: Auth, *, auth_fail_delay: float = 3.0) -> None:
        self.cluster = cluster
        self.auth = auth
        self.auth_fail_delay = auth_fail_delay


def _reason(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "error"
    return line.encode("latin-1", "replace").decode("latin-1")


def _to_param(value: Any) -> Any:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return [_to_param(v) for v in value]
    if value is None:
        return None
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _merge(into: dict[str, Any], key: str, value: Any) -> None:
    if key in into:
        prev = into[key]
        into[key] = (prev if isinstance(prev, list) else [prev]) + (value if isinstance(value, list) else [value])
    else:
        into[key] = value


class PveHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "PveServer"
    timeout = 60

    def version_string(self) -> str:
        return "pve-api-daemon/3.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.client_address[0], format % args)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        path = self.path.split("?", 1)[0] if hasattr(self, "path") else "-"
        log.info("%s %s %s", getattr(self, "command", "-"), path, code)

    def handle(self) -> None:
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", self.client_address[0], exc)
            return
        try:
            super().handle()
        except (ssl.SSLError, ConnectionError, socket.timeout) as exc:
            log.debug("connection from %s: %s", self.client_address[0], exc)

    # ---- verbs --------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_HEAD(self) -> None:
        self._send(501, "Method 'HEAD' not implemented", None)

    # ---- response -----------------------------------------------------------------------

    def _send(self, status: int, reason: str, payload: dict[str, Any] | None) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode() if payload is not None else b""
        self.send_response(status, _reason(reason))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        self.send_header("Expires", self.date_time_string())
        if payload is not None:
            self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        close = status >= 400 or self.close_connection
        self.send_header("Connection", "close" if close else "Keep-Alive")
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()
        if close:
            self.close_connection = True

    def _send_error(self, err: ApiError) -> None:
        if err.status == 401:
            time.sleep(self.server.app.auth_fail_delay)
        if err.empty_body:
            self._send(err.status, err.message, None)
        elif err.status == 400 and err.errors is not None:
            self._send(400, "Parameter verification failed.", {"data": None, "errors": err.errors, "message": "Parameter verification failed.\n"})
        else:
            msg = err.message if err.message.endswith("\n") or err.status == 501 else err.message + "\n"
            self._send(err.status, err.message, {"data": None, "message": msg})

    # ---- request ------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        try:
            self._handle(method)
        except ApiError as err:
            self._send_error(err)
        except (ConnectionError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        except Exception as exc:  # a bug in the emulator: answer like PVE would, keep serving
            log.exception("internal error on %s %s", method, self.path)
            self._send_error(ApiError(500, f"internal error: {exc}"))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ApiError(413, "Request Entity Too Large")
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self, method: str) -> None:
        app = self.server.app
        raw_path, _, query = self.path.partition("?")
        body = self._read_body()
        if raw_path != API_PREFIX and not raw_path.startswith(API_PREFIX + "/"):
            raise ApiError(501, "no such uri")
        segments = [unquote(s) for s in raw_path[len(API_PREFIX) :].split("/") if s]
        path = "/" + "/".join(segments)
        if method in ("GET", "DELETE") and body:
            raise ApiError(501, f"Unexpected content for method '{method}'")

        route, path_params, _exists = api.find_route(method, path)
        authorization = self.headers.get("Authorization")
        caller: api.Caller | None = None
        if route is not None and route.noauth:
            if not route.allowtoken and app.auth.has_token_header(authorization):
                raise ApiError(403, f"Permission check failed (URI '{path}' not available with API token, need proper ticket.")
        else:
            creds = app.auth.authenticate(self.headers.get("Cookie"), authorization, self.headers.get("CSRFPreventionToken"), method)
            caller = api.Caller(creds.userid, app.auth.no_access(creds.userid))
        if route is None:
            raise ApiError(501, f"Method '{method} {path}' not implemented")

        params = self._params(query, body)
        conflicts = {k: "duplicate parameter (already defined in URI) with conflicting values!" for k, v in path_params.items() if k in params and params[k] != v}
        if conflicts:
            raise ApiError(400, "Parameter verification failed.", errors=conflicts)
        params.update(path_params)

        if "node" in path_params:
            try:
                S.validate({"node": S.NODE}, {"node": params["node"]})
            except S.ParamError as exc:
                raise ApiError(400, "Parameter verification failed.", errors=exc.errors) from None
            with app.cluster.lock:
                app.cluster.check_node(params["node"])
        try:
            S.validate(route.schema, params)
        except S.ParamError as exc:
            raise ApiError(400, "Parameter verification failed.", errors=exc.errors) from None

        on_vm = "vmid" in path_params or route.handler is api.qemu_create  # not cluster/nextid: any user may ask
        if caller is not None and on_vm and str(params.get("vmid", "")).isdigit() and int(params["vmid"]) in caller.no_access:
            raise ApiError(403, f"Permission check failed (/vms/{params['vmid']}, {api.vm_privilege(method, route.template)})")

        if route.handler is api.ticket_create:
            self._login(params)
            return
        assert caller is not None or route.noauth
        with app.cluster.lock:
            result = route.handler(app.cluster, caller or api.Caller("nobody@pve"), params)
        if isinstance(result, api.WaitTask):
            result = self._wait(result)
        if isinstance(result, api.Result):
            payload: dict[str, Any] = {"data": result.data}
            if result.total:
                payload["total"] = result.total
        else:
            payload = {"data": result}
        self._send(200, "OK", payload)

    def _params(self, query: str, body: bytes) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for k, v in parse_qsl(query, keep_blank_values=True):
            _merge(params, k, v)
        if body:
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype == "application/json":
                try:
                    data = json.loads(body)
                except ValueError:
                    raise ApiError(400, "JSON decode error") from None
                if not isinstance(data, dict):
                    raise ApiError(400, "JSON body is not an object")
                for k, v in data.items():
                    pv = _to_param(v)
                    if pv is not None:
                        _merge(params, k, pv)
            else:
                for k, v in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
                    _merge(params, k, v)
        params.pop("_dc", None)
        return params

    def _login(self, params: dict[str, Any]) -> None:
        app = self.server.app
        data = app.auth.login(params["username"], params["password"], params.get("realm"))
        if data is None:
            time.sleep(app.auth_fail_delay)
            self._send(401, "authentication failure", {"data": None, "message": "authentication failure\n"})
            return
        data["clustername"] = app.cluster.cluster_name
        self._send(200, "OK", {"data": data})

    def _wait(self, wait: api.WaitTask) -> Any:
        cluster = self.server.app.cluster
        deadline = time.monotonic() + wait.delay
        while time.monotonic() < deadline:
            with cluster.lock:
                task = cluster.tasks[wait.upid]
                if task.status == "stopped":
                    if task.exitstatus == "OK":
                        return None
                    raise ApiError(500, f"failed to update VM {wait.vmid}: {task.exitstatus}")
            time.sleep(0.05)
        return wait.upid


class PveServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], app: App, ssl_context: ssl.SSLContext) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        self.ssl_context = ssl_context
        super().__init__(address, PveHandler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skip HTTPServer's getfqdn() (a DNS lookup)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        sock.settimeout(30)
        return self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("error while serving %s", client_address, exc_info=True)


def make_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def serve_in_thread(server: PveServer) -> threading.Thread:
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="pve-http", daemon=True)
    t.start()
    return t
