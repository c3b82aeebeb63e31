"""Proxmox VE client for hatui: list, create, start/stop, snapshot and roll back the lab's VMs.

Core module (no Textual). Built on proxmoxer (blocking, requests); one ``ProxmoxAPI`` per thread
(`threading.local`); asyncio callers (hatui.core) run the blocking calls with `asyncio.to_thread`.

Security rules kept here:

- API-token auth only; the secret comes from an environment variable or a file
  (`load_token_secret`), is held in `PveSettings.token_secret` (``repr=False``) and is never
  logged or put into an error message;
- TLS is verified by default: a CA file (``ca_file``), a pinned SHA-256 certificate fingerprint
  (``fingerprint``; checked by urllib3 on every new connection, before any request — and so the
  token — is sent), both, or the system trust store. ``verify_tls = False`` is the only way to turn
  verification off and prints a warning every time a client is made;
- every failure becomes a `ProxmoxError` (a `HatuiError`) with a one-line message quoting the
  API's own reason — never a traceback.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

from hatui.config import PROXMOX_TOKEN_ID, VmSpec
from hatui.errors import EXIT_REFUSED, EXIT_USAGE, HatuiError

log = logging.getLogger("hatui.proxmox")

DEFAULT_SECRET_ENV = "HATUI_PVE_TOKEN_SECRET"
DEFAULT_PORT = 8006
DEFAULT_TIMEOUT = 15.0  # PVE delays every 401 by 3 s; proxmoxer's default of 5 s is too tight
TASK_LOG_TAIL = 10
HATUI_TAG = "hatui"  # `create` tags the VMs it makes with it


# =============================================================================================
# errors


class ProxmoxError(HatuiError):
    """A failure talking to Proxmox VE. `str()` is one line quoting the API's reason."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None, errors: dict[str, str] | None = None) -> None:
        super().__init__(_one_line(message))
        self.status = status
        self.reason = reason
        self.errors = errors


class ProxmoxConfigError(ProxmoxError):
    """The settings are unusable (endpoint, token id, secret source, fingerprint, CA file)."""


class ProxmoxConnectionError(ProxmoxError):
    """No HTTP answer: connection refused, DNS failure, reset."""


class ProxmoxTLSError(ProxmoxConnectionError):
    """The server's certificate did not verify (CA, hostname or pinned fingerprint)."""


class ProxmoxTimeoutError(ProxmoxError):
    """No answer in time, or a task still running at its deadline."""


class ProxmoxAuthError(ProxmoxError):
    """401: wrong/unknown token, bad secret, expired ticket."""


class ProxmoxPermissionError(ProxmoxError):
    """403: the token lacks a privilege."""


class ProxmoxParameterError(ProxmoxError):
    """400: parameter verification failed (`errors` holds PVE's per-parameter texts)."""


class ProxmoxNodeUnreachable(ProxmoxError):
    """595/596: the API node could not reach the addressed cluster node."""


class ProxmoxNotFoundError(ProxmoxError):
    """The VM, snapshot or node does not exist (where PVE says so)."""


class ProxmoxExistsError(ProxmoxError):
    """The VMID (or HA resource) already exists."""


class ProxmoxLockedError(ProxmoxError):
    """The VM is locked (``VM is locked (snapshot)`` ...)."""


class ProxmoxTaskError(ProxmoxError):
    """A task ended with an error; carries the UPID, the exit status and the log's last lines."""

    def __init__(self, message: str, *, upid: str, exitstatus: str, log_tail: Sequence[str]) -> None:
        super().__init__(message, reason=exitstatus)
        self.upid = upid
        self.exitstatus = exitstatus
        self.log_tail = list(log_tail)

    @property
    def details(self) -> str:
        return "\n".join(self.log_tail)


class ProxmoxTaskLockedError(ProxmoxTaskError, ProxmoxLockedError):
    """A task failed because the VM was locked."""


class VmIdentityError(ProxmoxError):
    """The VM behind a VMID is not the one lab.toml describes (another name): nothing was sent to it."""

    exit_code = EXIT_REFUSED


class VmSpecMismatch(ProxmoxError):
    """A VM with this VMID (or name) exists but differs from the spec; nothing was changed."""

    exit_code = EXIT_REFUSED

    def __init__(self, message: str, differences: Sequence[str]) -> None:
        super().__init__(message)
        self.differences = list(differences)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# =============================================================================================
# settings


@dataclass(frozen=True)
class PveSettings:
    """Where and how to reach the Proxmox API. `token_secret` is the resolved secret value.

    endpoint:     ``https://host:8006``, ``host:8006`` or ``host`` (https only)
    token_id:     ``user@realm!tokenname``
    verify_tls:   False disables every check (warned about loudly, every time)
    ca_file:      PEM CA bundle to verify the server chain and hostname with
    fingerprint:  SHA-256 of the server certificate, ``AA:BB:..`` (colons/case optional)
    timeout:      seconds per HTTP request
    """

    endpoint: str
    token_id: str
    token_secret: str = field(repr=False)
    verify_tls: bool = True
    ca_file: str | None = None
    fingerprint: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def load(
        cls,
        endpoint: str,
        token_id: str,
        *,
        secret_env: str | None = DEFAULT_SECRET_ENV,
        secret_file: str | os.PathLike[str] | None = None,
        verify_tls: bool = True,
        ca_file: str | None = None,
        fingerprint: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> "PveSettings":
        """Build settings with the secret read from `secret_file` or the `secret_env` variable."""
        secret = load_token_secret(env=secret_env, file=secret_file)
        return cls(endpoint, token_id, secret, verify_tls, ca_file, fingerprint, timeout)


def settings_from_config(px: Any) -> PveSettings:
    """`PveSettings` from an object shaped like ``hatui.config.ProxmoxConfig``
    (endpoint, token_id, token_secret_env / token_secret_file, verify_tls, ca_file, fingerprint, timeout_s)."""
    secret_env = getattr(px, "token_secret_env", None)
    secret_file = getattr(px, "token_secret_file", None)
    ca_file = getattr(px, "ca_file", None)
    return PveSettings.load(
        px.endpoint,
        px.token_id,
        secret_env=None if secret_file else secret_env,
        secret_file=secret_file,
        verify_tls=bool(getattr(px, "verify_tls", True)),
        ca_file=str(ca_file) if ca_file else None,
        fingerprint=getattr(px, "fingerprint", None),
        timeout=float(getattr(px, "timeout_s", DEFAULT_TIMEOUT)),
    )


def load_token_secret(*, env: str | None = DEFAULT_SECRET_ENV, file: str | os.PathLike[str] | None = None) -> str:
    """The token secret from `file` (preferred when given) or the environment variable `env`."""
    if file:
        path = Path(file).expanduser()
        try:
            mode = path.stat().st_mode
            secret = path.read_text().strip()
        except OSError as exc:
            raise ProxmoxConfigError(f"cannot read the Proxmox token secret file {path}: {exc.strerror or exc}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("Proxmox token secret file %s is accessible by other users (mode %o); chmod 600 it", path, stat.S_IMODE(mode))
        if not secret:
            raise ProxmoxConfigError(f"the Proxmox token secret file {path} is empty")
        return secret
    if env:
        secret = os.environ.get(env, "").strip()
        if not secret:
            raise ProxmoxConfigError(f"the Proxmox token secret is not set: export {env} or give a secret file")
        return secret
    raise ProxmoxConfigError("no source for the Proxmox token secret (environment variable or file)")


def normalize_fingerprint(value: str) -> str:
    """``AA:BB:...`` upper-case; accepts colons or not, any case, an optional ``sha256:`` prefix."""
    raw = value.strip()
    if raw.lower().startswith("sha256:") or raw.lower().startswith("sha256 "):
        raw = raw[7:]
    digits = raw.replace(":", "").replace(" ", "").upper()
    if not re.fullmatch(r"[0-9A-F]{64}", digits):
        raise ProxmoxConfigError("the pinned Proxmox certificate fingerprint must be a SHA-256 digest: 64 hex digits, colons optional")
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2))


def _parse_endpoint(endpoint: str) -> tuple[str, int, str]:
    """(host, port, base url) from the endpoint setting."""
    text = endpoint.strip()
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urlsplit(text)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ProxmoxConfigError(f"bad Proxmox endpoint {endpoint!r}: {exc}") from None
    if parts.scheme != "https":
        raise ProxmoxConfigError(f"the Proxmox endpoint must use https, got {endpoint!r}")
    if not parts.hostname:
        raise ProxmoxConfigError(f"the Proxmox endpoint has no host: {endpoint!r}")
    if parts.path.rstrip("/") not in ("", "/api2/json"):
        raise ProxmoxConfigError(f"the Proxmox endpoint must not have a path: {endpoint!r}")
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    return host, port, f"https://{shown}:{port}"


# =============================================================================================
# results


@dataclass(frozen=True)
class Snapshot:
    name: str
    snaptime: int | None
    description: str
    parent: str | None
    vmstate: bool


@dataclass(frozen=True)
class VmState:
    vmid: int
    name: str
    node: str
    status: str  # running | stopped | paused | suspended | unknown (node unreachable) ...
    uptime: int
    cpu: float  # fraction of the VM's vCPUs
    cpus: int
    mem: int  # bytes
    maxmem: int  # bytes
    lock: str | None = None
    hastate: str | None = None
    tags: str | None = None
    snapshots: tuple[Snapshot, ...] | None = None  # None: not fetched or not readable
    parent: str | None = None  # snapshot the current state derives from
    snapshot_error: str | None = None

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused", "suspended")


@dataclass(frozen=True)
class TaskProgress:
    upid: str
    node: str
    type: str
    id: str
    status: str  # running | stopped
    exitstatus: str | None
    elapsed: float


@dataclass(frozen=True)
class TaskResult:
    upid: str
    node: str
    type: str
    id: str
    exitstatus: str
    elapsed: float

    @property
    def warnings(self) -> int:
        m = re.fullmatch(r"WARNINGS: (\d+)", self.exitstatus)
        return int(m.group(1)) if m else 0


@dataclass(frozen=True)
class CreateResult:
    vmid: int
    node: str
    created: bool  # False: an identical VM already existed and was left alone
    task: TaskResult | None = None
    notes: tuple[str, ...] = ()


def create_params(spec: VmSpec) -> dict[str, Any]:
    """The POST /nodes/{node}/qemu form for `spec` (booleans as 0/1)."""
    p: dict[str, Any] = {"vmid": spec.vmid, "name": spec.name, "cores": spec.cores, "memory": str(spec.memory_mb),
                         "ostype": spec.ostype, "tags": HATUI_TAG}
    if spec.disk_bus == "scsi":
        p["scsihw"] = "virtio-scsi-single"
    for i, size in enumerate(spec.disks_gb):
        p[f"{spec.disk_bus}{i}"] = f"{spec.storage}:{int(size)}"
    for i, bridge in enumerate(spec.nics):
        p[f"net{i}"] = f"{spec.nic_model},bridge={bridge}"
    return p


ProgressFn = Callable[[TaskProgress], None]


def parse_upid(upid: str) -> dict[str, str]:
    m = re.fullmatch(
        r"UPID:([a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):",
        upid or "",
    )
    if not m:
        raise ProxmoxError(f"Proxmox returned something that is not a task id: {upid!r}")
    return {"node": m.group(1), "type": m.group(5), "id": m.group(6), "user": m.group(7)}


def task_ok(exitstatus: str | None) -> bool:
    return exitstatus == "OK" or bool(exitstatus and exitstatus.startswith("WARNINGS: "))


# =============================================================================================
# TLS pinning


def _fingerprint_adapter(fingerprint: str) -> Any:
    """A requests adapter whose urllib3 pools check the peer certificate's SHA-256 on connect."""
    from requests.adapters import HTTPAdapter

    pin = fingerprint.replace(":", "").lower()

    class PinnedFingerprintAdapter(HTTPAdapter):
        def __init__(self) -> None:
            self._pin = pin  # must exist before HTTPAdapter.__init__ calls init_poolmanager
            super().__init__()

        def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
            pool_kwargs["assert_fingerprint"] = self._pin
            super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
            proxy_kwargs["assert_fingerprint"] = self._pin
            return super().proxy_manager_for(proxy, **proxy_kwargs)

        def __setstate__(self, state: dict[str, Any]) -> None:  # pragma: no cover - pickling
            self._pin = pin
            super().__setstate__(state)

    return PinnedFingerprintAdapter()


def _warn_stderr(message: str) -> None:
    print(f"hatui: WARNING: {message}", file=sys.stderr, flush=True)


# =============================================================================================
# client


class PveClient:
    """Blocking Proxmox client. Safe to share between threads (one ProxmoxAPI per thread)."""

    def __init__(self, settings: PveSettings, *, warn: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.host, self.port, self.url = _parse_endpoint(settings.endpoint)
        m = PROXMOX_TOKEN_ID.fullmatch(settings.token_id or "")
        if not m:
            raise ProxmoxConfigError(f"the Proxmox token id must look like user@realm!tokenname, got {settings.token_id!r}")
        self._user, self._token_name = m.group(1), m.group(2)
        if not settings.token_secret:
            raise ProxmoxConfigError("the Proxmox token secret is empty")
        self.fingerprint = normalize_fingerprint(settings.fingerprint) if settings.fingerprint else None
        if settings.ca_file and not Path(settings.ca_file).expanduser().is_file():
            raise ProxmoxConfigError(f"the Proxmox CA file does not exist: {settings.ca_file}")
        self.warnings: list[str] = []
        if not settings.verify_tls:
            ignored = " (ca_file/fingerprint are ignored)" if settings.ca_file or self.fingerprint else ""
            message = (
                f"TLS verification of the Proxmox API at {self.url} is DISABLED (verify_tls = false){ignored}: "
                "anyone on the network path can impersonate the server and steal the API token"
            )
            self.warnings.append(message)
            log.info(message)
            (warn or _warn_stderr)(message)
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"PveClient({self.url}, token {self.settings.token_id})"

    # ---- plumbing ---------------------------------------------------------------------------

    def _verify(self) -> bool | str:
        s = self.settings
        if not s.verify_tls:
            return False
        if s.ca_file:
            return str(Path(s.ca_file).expanduser())
        if self.fingerprint:
            return False  # the pin replaces chain verification (self-signed PVE certificates)
        return True

    def api(self) -> Any:
        """This thread's ProxmoxAPI (created on first use; token auth does no I/O here)."""
        api = getattr(self._local, "api", None)
        if api is None:
            from proxmoxer import ProxmoxAPI

            try:
                api = ProxmoxAPI(
                    self.host,
                    port=self.port,
                    user=self._user,
                    token_name=self._token_name,
                    token_value=self.settings.token_secret,
                    verify_ssl=self._verify(),
                    timeout=self.settings.timeout,
                    service="PVE",
                )
            except NotImplementedError as exc:
                raise ProxmoxConfigError(f"proxmoxer refused the settings: {exc}") from None
            if self.fingerprint and self.settings.verify_tls:
                store = getattr(api, "_store", None)
                session = store.get("session") if isinstance(store, dict) else None
                if session is None or not hasattr(session, "mount"):
                    raise ProxmoxConfigError("this proxmoxer version does not expose its HTTP session; cannot pin the certificate fingerprint")
                session.mount("https://", _fingerprint_adapter(self.fingerprint))
            self._local.api = api
        return api

    def request(self, method: str, path: str, **params: Any) -> Any:
        """One API call (`path` relative to /api2/json); every failure becomes a ProxmoxError."""
        params = {k: v for k, v in params.items() if v is not None}
        what = f"{method} /{path.strip('/')}"
        resource = self.api()(path.strip("/"))
        try:
            if method == "GET":
                return resource.get(**params)
            if method == "POST":
                return resource.post(**params)
            if method == "PUT":
                return resource.put(**params)
            if method == "DELETE":
                return resource.delete(**params)
        except Exception as exc:  # translated below; never leak a traceback
            raise self._translate(exc, what) from None
        raise ValueError(f"unsupported method {method}")

    def _translate(self, exc: BaseException, what: str) -> ProxmoxError:
        import requests
        from proxmoxer import AuthenticationError, ResourceException

        if isinstance(exc, ProxmoxError):
            return exc
        if isinstance(exc, ResourceException):
            return self._from_response(exc, what)
        if isinstance(exc, AuthenticationError):
            return ProxmoxAuthError(f"Proxmox API at {self.url} refused the login: {exc}")
        if isinstance(exc, requests.exceptions.SSLError):
            return ProxmoxTLSError(f"TLS verification of the Proxmox API at {self.url} failed: {self._tls_reason(exc)}")
        if isinstance(exc, requests.exceptions.Timeout):
            return ProxmoxTimeoutError(f"no answer from the Proxmox API at {self.url} within {self.settings.timeout:g}s ({what})")
        if isinstance(exc, requests.exceptions.ConnectionError):
            return ProxmoxConnectionError(f"cannot connect to the Proxmox API at {self.url}: {_errno_reason(exc)}")
        if isinstance(exc, requests.exceptions.RequestException):
            return ProxmoxConnectionError(f"request to the Proxmox API at {self.url} failed ({what}): {exc.__class__.__name__}")
        return ProxmoxError(f"unexpected error from the Proxmox client ({what}): {exc.__class__.__name__}: {exc}")

    def _from_response(self, exc: Any, what: str) -> ProxmoxError:
        status = int(exc.status_code)
        reason = _one_line(exc.content if isinstance(exc.content, str) else "") or exc.status_message or ""
        errors = exc.errors if isinstance(exc.errors, dict) and not isinstance(exc.errors.get("errors"), bytes) else None
        kw: dict[str, Any] = {"status": status, "reason": reason, "errors": errors}
        if status == 401:
            return ProxmoxAuthError(f"Proxmox API at {self.url} rejected token {self.settings.token_id}: 401 {reason}", **kw)
        if status == 403:
            m = re.fullmatch(r"Permission check failed \((/[^,]*), ([^)]+)\)", reason)
            if m:
                return ProxmoxPermissionError(f"Proxmox API refused {what}: token {self.settings.token_id} lacks "
                                              f"{m.group(2)} on {m.group(1)} (403)", **kw)
            return ProxmoxPermissionError(f"Proxmox API refused {what}: 403 {reason}", **kw)
        if status in (595, 596):
            node = re.match(r"\w+ /nodes/([^/]+)", what)
            who = f"node '{node.group(1)}'" if node else "the addressed node"
            return ProxmoxNodeUnreachable(f"Proxmox {who} is unreachable ({status} {reason}) [{what}]", **kw)
        if status == 400:
            detail = "; ".join(f"{k}: {_one_line(v)}" for k, v in sorted((errors or {}).items()))
            return ProxmoxParameterError(f"Proxmox API rejected {what}: 400 {reason}" + (f" ({detail})" if detail else ""), **kw)
        text = f"Proxmox API: {what}: {reason}" if status == 500 else f"Proxmox API: {what}: {status} {reason}"
        if re.match(r"(VM|CT) is locked \(", reason):
            return ProxmoxLockedError(text, **kw)
        if "already exists" in reason or "already defined" in reason:
            return ProxmoxExistsError(text, **kw)
        if "does not exist" in reason or "unable to find configuration file" in reason or "no such" in reason:
            return ProxmoxNotFoundError(text, **kw)
        return ProxmoxError(text, **kw)

    def _tls_reason(self, exc: BaseException) -> str:
        text = str(exc)
        m = re.search(r'Fingerprints did not match\. Expected "([0-9a-fA-F]+)", got "([0-9a-fA-F]+)"', text)
        if m:
            got = normalize_fingerprint(m.group(2))
            return f"certificate fingerprint mismatch: pinned {self.fingerprint}, server presented {got}"
        m = re.search(r"certificate verify failed: ([^(')\"]+)", text)
        if m:
            hint = "" if self.settings.ca_file else " (set ca_file to the cluster CA or pin the certificate fingerprint)"
            return f"certificate verify failed: {m.group(1).strip()}{hint}"
        m = re.search(r"hostname '?([^' ]+)'? doesn't match ([^(\"]+)", text)
        if m:
            return f"the certificate does not name {m.group(1)}: {m.group(2).strip()}"
        m = re.search(r"\[SSL[^\]]*\] ([^(')\"]+)", text)
        return m.group(1).strip() if m else "TLS handshake failed"

    # ---- reads ------------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        return self.request("GET", "version")

    def resources(self) -> list[dict[str, Any]]:
        """Cluster VM resources of type qemu (one call)."""
        return [r for r in (self.request("GET", "cluster/resources", type="vm") or []) if r.get("type") == "qemu"]

    def locate(self, target: int | str, *, expect_name: str | None = None) -> dict[str, Any]:
        """The cluster-resources entry of a VM given by VMID or name.

        With `expect_name` (the lab.toml host name), a VM named otherwise is refused
        (`VmIdentityError`): that VMID belongs to another VM, which must not be touched.
        """
        items = self.resources()
        by_vmid = isinstance(target, int) or str(target).isdigit()
        if by_vmid:
            found = [r for r in items if int(r["vmid"]) == int(target)]
        else:
            found = [r for r in items if r.get("name") == target]
        if not found:
            if by_vmid:
                self.check_not_hidden(int(target))
            raise ProxmoxNotFoundError(f"no VM {target} in the Proxmox cluster")
        if len(found) > 1:
            raise ProxmoxError(f"the VM name {target!r} is ambiguous: VMIDs {', '.join(str(r['vmid']) for r in found)}")
        r = found[0]
        if expect_name is not None and r.get("name") != expect_name:
            raise VmIdentityError(f"VM {r['vmid']} on {r.get('node')} is named {r.get('name')!r}, lab.toml expects "
                                  f"{expect_name!r}: another VM has this VMID; refused, nothing sent to it")
        return r

    def check_not_hidden(self, vmid: int) -> None:
        """Raise `ProxmoxPermissionError` if VMID `vmid` is taken by a VM this token cannot see
        (cluster/resources lists only the VMs it has VM.Audit on; cluster/nextid sees them all)."""
        try:
            self.request("GET", "cluster/nextid", vmid=vmid)
        except ProxmoxParameterError as exc:
            if "already exists" in str(exc):
                raise ProxmoxPermissionError(f"VM {vmid} exists but token {self.settings.token_id} cannot see it: "
                                             f"it lacks VM.Audit on /vms/{vmid}", status=403) from None
            raise

    def snapshots(self, node: str, vmid: int) -> tuple[tuple[Snapshot, ...], str | None]:
        """(snapshots sorted by time, parent of the current state)."""
        items = self.request("GET", f"nodes/{node}/qemu/{vmid}/snapshot") or []
        parent = None
        snaps = []
        for it in items:
            if it.get("name") == "current":
                parent = it.get("parent")
                continue
            snaps.append(Snapshot(str(it["name"]), it.get("snaptime"), str(it.get("description") or ""), it.get("parent"), bool(it.get("vmstate"))))
        snaps.sort(key=lambda s: (s.snaptime or 0, s.name))
        return tuple(snaps), parent

    def list_vms(self, *, vmids: Sequence[int] | None = None, with_snapshots: bool = True) -> list[VmState]:
        """All QEMU VMs (or those in `vmids`) with state, node, uptime, cpu, mem and snapshots.

        A VM whose node is unreachable is listed with status ``unknown`` and `snapshot_error` set.
        """
        out = []
        for r in sorted(self.resources(), key=lambda r: int(r["vmid"])):
            vmid = int(r["vmid"])
            if vmids is not None and vmid not in vmids:
                continue
            snaps: tuple[Snapshot, ...] | None = None
            parent = None
            err = None
            if with_snapshots:
                try:
                    snaps, parent = self.snapshots(r["node"], vmid)
                except ProxmoxError as exc:
                    err = str(exc)
            out.append(
                VmState(
                    vmid=vmid,
                    name=str(r.get("name") or f"VM {vmid}"),
                    node=str(r.get("node")),
                    status=str(r.get("status") or "unknown"),
                    uptime=int(r.get("uptime") or 0),
                    cpu=float(r.get("cpu") or 0.0),
                    cpus=int(r.get("maxcpu") or 0),
                    mem=int(r.get("mem") or 0),
                    maxmem=int(r.get("maxmem") or 0),
                    lock=r.get("lock"),
                    hastate=r.get("hastate"),
                    tags=r.get("tags"),
                    snapshots=snaps,
                    parent=parent,
                    snapshot_error=err,
                )
            )
        return out

    def status(self, target: int | str, *, expect_name: str | None = None) -> dict[str, Any]:
        """``status/current`` of a VM (live, not the cluster cache), plus ``node``."""
        r = self.locate(target, expect_name=expect_name)
        st = self.request("GET", f"nodes/{r['node']}/qemu/{r['vmid']}/status/current")
        return dict(st, node=r["node"])

    # ---- create -----------------------------------------------------------------------------

    def compare(self, spec: VmSpec, config: dict[str, Any]) -> list[str]:
        """Differences between a VM config and the spec (empty: it matches)."""
        diffs = []
        if config.get("name") != spec.name:
            diffs.append(f"name: {config.get('name')!r} on Proxmox, {spec.name!r} in the spec")
        cores = int(config.get("cores") or 1)
        if cores != spec.cores:
            diffs.append(f"cores: {cores} on Proxmox, {spec.cores} in the spec")
        sockets = int(config.get("sockets") or 1)
        if sockets != 1:
            diffs.append(f"sockets: {sockets} on Proxmox, 1 in the spec")
        mem = str(config.get("memory", "512"))
        m = re.search(r"(?:^|current=)(\d+)", mem)
        memory = int(m.group(1)) if m else -1
        if memory != spec.memory_mb:
            diffs.append(f"memory: {memory} MiB on Proxmox, {spec.memory_mb} MiB in the spec")
        disks = _config_disks(config)
        have = [(key, storage, size) for key, storage, size in disks]
        if [s for _, _, s in have] != [int(x) for x in spec.disks_gb]:
            shown = ", ".join(f"{k}={s}G" for k, _, s in have) or "none"
            diffs.append(f"disks: {shown} on Proxmox, {', '.join(f'{g}G' for g in spec.disks_gb) or 'none'} in the spec")
        else:
            wrong = [f"{k} on {st}" for k, st, _ in have if st != spec.storage]
            if wrong:
                diffs.append(f"disk storage: {', '.join(wrong)} on Proxmox, {spec.storage} in the spec")
        bridges = [b for _, b in _config_nics(config)]
        if bridges != list(spec.nics):
            diffs.append(f"nics: bridges {', '.join(bridges) or 'none'} on Proxmox, {', '.join(spec.nics) or 'none'} in the spec")
        return diffs

    def create_vm(self, spec: VmSpec, *, timeout: float = 300, progress: ProgressFn | None = None) -> CreateResult:
        """Create the VM unless an identical one exists (then leave it alone).

        Raises `VmSpecMismatch` if the VMID exists with a different config or the name is taken
        by another VMID — nothing is ever changed on an existing VM.
        """
        items = self.resources()
        same_id = next((r for r in items if int(r["vmid"]) == spec.vmid), None)
        same_name = [r for r in items if r.get("name") == spec.name and int(r["vmid"]) != spec.vmid]
        if same_name:
            r = same_name[0]
            raise VmSpecMismatch(
                f"VM {spec.name!r} already exists as VMID {r['vmid']} on {r['node']} (the spec wants VMID {spec.vmid}); nothing changed",
                [f"vmid: {r['vmid']} on Proxmox, {spec.vmid} in the spec"],
            )
        if same_id is None:
            self.check_not_hidden(spec.vmid)
        if same_id is not None:
            node = same_id["node"]
            config = self.request("GET", f"nodes/{node}/qemu/{spec.vmid}/config")
            if config.get("lock") == "create":
                raise ProxmoxLockedError(f"VM {spec.vmid} is still being created on {node} (lock: create); retry when its qmcreate task ends")
            diffs = self.compare(spec, config)
            if diffs:
                raise VmSpecMismatch(f"VM {spec.vmid} exists on {node} but differs from the spec ({'; '.join(diffs)}); nothing changed", diffs)
            notes = (f"VM {spec.vmid} lives on {node}, the spec places it on {spec.node}",) if node != spec.node else ()
            return CreateResult(spec.vmid, node, created=False, notes=notes)
        upid = self.request("POST", f"nodes/{spec.node}/qemu", **create_params(spec))
        task = self.wait_task(upid, timeout=timeout, progress=progress)
        return CreateResult(spec.vmid, spec.node, created=True, task=task)

    # ---- power and snapshots ----------------------------------------------------------------

    # Every action takes `expect_name`: the lab.toml host name the VM must carry (see `locate`).

    def _vm_task(self, target: int | str, method: str, suffix: str, params: dict[str, Any], *, expect_name: str | None,
                 wait: bool, timeout: float, progress: ProgressFn | None) -> TaskResult | str:
        r = self.locate(target, expect_name=expect_name)
        upid = self.request(method, f"nodes/{r['node']}/qemu/{r['vmid']}/{suffix}", **params)
        if not wait:
            return upid
        return self.wait_task(upid, timeout=timeout, progress=progress)

    def _power(self, target: int | str, action: str, params: dict[str, Any], want: str, *, expect_name: str | None,
               wait: bool, timeout: float, progress: ProgressFn | None) -> TaskResult | str:
        start = time.monotonic()
        result = self._vm_task(target, "POST", f"status/{action}", params, expect_name=expect_name, wait=wait,
                               timeout=timeout, progress=progress)
        if isinstance(result, TaskResult) and result.type.startswith("ha"):
            # HA-managed: the task only queued a request; wait for the HA stack to act.
            self.wait_for_status(int(result.id), want, timeout=max(1.0, timeout - (time.monotonic() - start)))
        return result

    def start(self, target: int | str, *, expect_name: str | None = None, wait: bool = True, timeout: float = 120,
              progress: ProgressFn | None = None) -> TaskResult | str:
        return self._power(target, "start", {}, "running", expect_name=expect_name, wait=wait, timeout=timeout, progress=progress)

    def stop(self, target: int | str, *, expect_name: str | None = None, wait: bool = True, timeout: float = 120,
             progress: ProgressFn | None = None) -> TaskResult | str:
        return self._power(target, "stop", {}, "stopped", expect_name=expect_name, wait=wait, timeout=timeout, progress=progress)

    def shutdown(self, target: int | str, *, guest_timeout: int | None = None, force_stop: bool = False,
                 expect_name: str | None = None, wait: bool = True, timeout: float = 180,
                 progress: ProgressFn | None = None) -> TaskResult | str:
        params = {"timeout": guest_timeout, "forceStop": 1 if force_stop else None}
        return self._power(target, "shutdown", params, "stopped", expect_name=expect_name, wait=wait, timeout=timeout, progress=progress)

    def snapshot(self, target: int | str, name: str, *, vmstate: bool = False, description: str | None = None,
                 expect_name: str | None = None, wait: bool = True, timeout: float = 300,
                 progress: ProgressFn | None = None) -> TaskResult | str:
        check_snapname(name)
        params = {"snapname": name, "vmstate": 1 if vmstate else None, "description": description}
        return self._vm_task(target, "POST", "snapshot", params, expect_name=expect_name, wait=wait, timeout=timeout, progress=progress)

    def rollback(self, target: int | str, name: str, *, start: bool = False, expect_name: str | None = None,
                 wait: bool = True, timeout: float = 300, progress: ProgressFn | None = None) -> TaskResult | str:
        check_snapname(name)
        return self._vm_task(target, "POST", f"snapshot/{name}/rollback", {"start": 1 if start else None},
                             expect_name=expect_name, wait=wait, timeout=timeout, progress=progress)

    def delete_snapshot(self, target: int | str, name: str, *, force: bool = False, expect_name: str | None = None,
                        wait: bool = True, timeout: float = 300, progress: ProgressFn | None = None) -> TaskResult | str:
        check_snapname(name)
        return self._vm_task(target, "DELETE", f"snapshot/{name}", {"force": 1 if force else None},
                             expect_name=expect_name, wait=wait, timeout=timeout, progress=progress)

    # ---- tasks ------------------------------------------------------------------------------

    def task_log(self, upid: str, *, limit: int = 0) -> list[str]:
        node = parse_upid(upid)["node"]
        lines = self.request("GET", f"nodes/{node}/tasks/{upid}/log", start=0, limit=0) or []
        texts = [str(item.get("t", "")) for item in sorted(lines, key=lambda i: i.get("n", 0))]
        return texts[-limit:] if limit else texts

    def wait_task(self, upid: str, *, timeout: float = 300, poll_interval: float | None = None, progress: ProgressFn | None = None) -> TaskResult:
        """Poll a task until it stops; raise `ProxmoxTaskError` (with the log's tail) if it failed.

        Polls every `poll_interval` seconds, or (None) from 0.1 s backing off to 1 s.
        """
        info = parse_upid(upid)
        node = info["node"]
        start = time.monotonic()
        step = 0.1
        while True:
            st = self.request("GET", f"nodes/{node}/tasks/{upid}/status") or {}
            elapsed = time.monotonic() - start
            status = str(st.get("status", "running"))
            if progress is not None:
                progress(TaskProgress(upid, node, info["type"], info["id"], status, st.get("exitstatus"), elapsed))
            if status == "stopped":
                break
            if elapsed >= timeout:
                raise ProxmoxTimeoutError(f"task {info['type']} for VM {info['id']} on {node} still running after {timeout:g}s ({upid})")
            delay = poll_interval if poll_interval is not None else step
            step = min(1.0, step * 1.5)
            time.sleep(max(0.01, min(delay, timeout - elapsed)))
        exitstatus = str(st.get("exitstatus") or "unexpected status")
        if task_ok(exitstatus):
            return TaskResult(upid, node, info["type"], info["id"], exitstatus, elapsed)
        try:
            tail = self.task_log(upid, limit=TASK_LOG_TAIL)
        except ProxmoxError as exc:
            tail = [f"(task log unavailable: {exc})"]
        what = f"VM {info['id']}" if info["id"] else "the cluster"
        message = f"Proxmox task {info['type']} for {what} on {node} failed: {exitstatus}"
        cls = ProxmoxTaskLockedError if re.match(r"(VM|CT) is locked \(", exitstatus) else ProxmoxTaskError
        raise cls(message, upid=upid, exitstatus=exitstatus, log_tail=tail)

    def wait_for_status(self, vmid: int, want: str, *, timeout: float = 120, poll_interval: float = 0.25) -> dict[str, Any]:
        """Poll ``status/current`` until ``status == want`` (running/stopped)."""
        start = time.monotonic()
        while True:
            st = self.status(vmid)
            if st.get("status") == want:
                return st
            if time.monotonic() - start >= timeout:
                raise ProxmoxTimeoutError(f"VM {vmid} is still {st.get('status')} after {timeout:g}s (waiting for {want})")
            time.sleep(poll_interval)


def check_snapname(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]+", name or "") or len(name) > 40:
        raise ProxmoxParameterError(f"invalid snapshot name {name!r}: a letter, then letters, digits, '-' or '_' (2..40 characters)")


def _config_disks(config: dict[str, Any]) -> list[tuple[str, str, int]]:
    """[(key, storage, size GiB)] of the non-CD-ROM disks, by bus order then index."""
    out = []
    for key, value in config.items():
        m = re.fullmatch(r"(ide|sata|scsi|virtio)(\d+)", key)
        if not m or "media=cdrom" in str(value):
            continue
        volume = str(value).split(",", 1)[0]
        size = re.search(r"(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)", str(value))
        gib = 0
        if size:
            factor = {"K": 1 / 1048576, "M": 1 / 1024, "G": 1, "T": 1024, "": 1 / 1073741824}[size.group(2)]
            gib = int(round(float(size.group(1)) * factor))
        out.append(((("ide", "sata", "scsi", "virtio").index(m.group(1)), int(m.group(2))), key, volume.split(":", 1)[0], gib))
    out.sort()
    return [(k, st, g) for _, k, st, g in out]


def _config_nics(config: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in config.items():
        m = re.fullmatch(r"net(\d+)", key)
        if m:
            br = re.search(r"(?:^|,)bridge=([^,]+)", str(value))
            out.append((int(m.group(1)), key, br.group(1) if br else ""))
    out.sort()
    return [(k, b) for _, k, b in out]


def _errno_reason(exc: BaseException) -> str:
    text = str(exc)
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if m:
        return m.group(1).strip()
    for pattern in (r"Failed to resolve '[^']+'", r"Connection refused", r"Connection reset by peer", r"No route to host", r"Network is unreachable"):
        m = re.search(pattern, text)
        if m:
            return m.group(0)
    return "connection failed"


__all__ = [
    "CreateResult", "DEFAULT_SECRET_ENV", "ProxmoxAuthError", "ProxmoxConfigError",
    "ProxmoxConnectionError", "ProxmoxError", "ProxmoxExistsError", "ProxmoxLockedError", "ProxmoxNodeUnreachable",
    "ProxmoxNotFoundError", "ProxmoxParameterError", "ProxmoxPermissionError", "ProxmoxTLSError", "ProxmoxTaskError",
    "ProxmoxTaskLockedError", "ProxmoxTimeoutError", "PveClient", "PveSettings", "settings_from_config", "Snapshot", "TaskProgress",
    "TaskResult", "VmIdentityError", "VmSpec", "VmSpecMismatch", "VmState", "load_token_secret", "normalize_fingerprint", "parse_upid",
    "task_ok",
]  # fmt: skip

