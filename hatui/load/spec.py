"""What a load run does: target URL, rate, count, timeout, probe stream, served-by extraction.

Validation raises `LoadSpecError` (a `UsageError`: the CLI prints it and exits 2).
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from hatui.errors import RefusedError, UsageError

# Documented limits: bigger runs need `force=True` (`hatui load --force`); drills never exceed them.
MAX_CONNECTIONS = 1_000_000
MAX_DURATION_S = 3600.0
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_PROBE_INTERVAL_S = 0.010
DEFAULT_PROBE_TIMEOUT_S = 0.5
USER_AGENT = "hatui-load/0.1"


class LoadSpecError(UsageError):
    """A load run's parameters are wrong (bad URL, rate <= 0, ...)."""


class LoadLimitError(RefusedError):
    """A run beyond the documented limits without `force` (exit code 3)."""


@dataclass(frozen=True)
class Target:
    """An http:// URL split for the engine (and httperf, which takes host and port apart)."""

    url: str
    host: str  # as written in the URL (name or address, no brackets)
    port: int
    uri: str  # path + query, starts with "/"
    host_header: str

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
            return True
        except ValueError:
            return False


def limit_problems(num_conns: int, rate: float, timeout: float) -> list[str]:
    """Why a run is beyond the documented limits (empty: it is within them)."""
    out = []
    if num_conns > MAX_CONNECTIONS:
        out.append(f"{num_conns} connections is more than {MAX_CONNECTIONS:,}")
    planned_duration = (num_conns - 1) / rate if num_conns > 1 else 0.0
    if num_conns and planned_duration + timeout > MAX_DURATION_S:
        out.append(f"the run would take {planned_duration + timeout:.0f} s, more than {MAX_DURATION_S:.0f} s")
    return out


def request_path_problem(uri: str) -> str | None:
    """Why `uri` cannot go into a request line (None: it can): it is sent as ASCII, unescaped."""
    if not uri.startswith("/"):
        return f"expected a path starting with /, found \"{uri}\""
    if not all(33 <= ord(c) < 127 for c in uri):
        return f"expected ASCII without spaces (percent-encode the rest), found \"{uri}\""
    return None


def host_header_problem(value: str) -> str | None:
    """Why `value` cannot be sent as the Host header (None: it can): requests are sent as ASCII."""
    if value and value.isascii() and value.isprintable() and " " not in value:
        return None
    return f"bad Host header {value!r}: expected ASCII without spaces (an international name in its xn-- form)"


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (RFC 9110 token)


def header_name_problem(name: str) -> str | None:
    """Why `name` cannot be a reply header's name (None: it can)."""
    if _HEADER_NAME.fullmatch(name):
        return None
    return f"bad served-by header {name!r}: expected a header name of ASCII letters, digits and '-'"


def parse_url(url: str, host_header: str | None = None) -> Target:
    """Parse an http:// URL; raise LoadSpecError with a clear message otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise LoadSpecError("empty URL")
    url = url.strip()
    if not re.match(r"(?i)^http://", url):
        scheme = url.split("://", 1)[0] if "://" in url else None
        if scheme:
            raise LoadSpecError(f"unsupported URL scheme {scheme!r} in {url!r}: only http:// is supported")
        raise LoadSpecError(f"not an http:// URL: {url!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise LoadSpecError(f"bad URL {url!r}: {exc}") from None
    host = parts.hostname
    if not host:
        raise LoadSpecError(f"no host in URL {url!r}")
    if parts.username is not None or parts.password is not None:
        raise LoadSpecError(f"credentials in URLs are not supported: {url!r}")
    if port is None:
        port = 80
    if not 0 < port < 65536:
        raise LoadSpecError(f"bad port {port} in {url!r}")
    if any(c.isspace() for c in url):
        raise LoadSpecError(f"whitespace in URL {url!r}")
    uri = parts.path or "/"
    if parts.query:
        uri += "?" + parts.query
    if request_path_problem(uri):
        raise LoadSpecError(f"the path of {url!r} must be ASCII without spaces (percent-encode it)")
    if host_header is None:
        shown = f"[{host}]" if ":" in host else host
        host_header = shown if port == 80 else f"{shown}:{port}"
    if host_header_problem(host_header):
        raise LoadSpecError(host_header_problem(host_header))
    return Target(url=url, host=host, port=port, uri=uri, host_header=host_header)


def resolve(target: Target) -> tuple[int, tuple]:
    """Resolve the target host once: (address family, sockaddr). Raises LoadSpecError."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise LoadSpecError(f"cannot resolve host {target.host!r}: {getattr(exc, 'strerror', None) or exc}") from None
    infos.sort(key=lambda i: i[0] != socket.AF_INET)  # IPv4 first, as httperf
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


_DEFAULT_SERVED_BY_PATTERN = rb"served by ([^\s<>\"']+)"


@dataclass(frozen=True)
class ServedBy:
    """How to find the serving node in a reply: a header first, then a regex on the body.

    The lab's nginx page says "served by <node>" and sends `X-Served-By`. `pattern` must have one
    group. Either may be None to skip it.
    """

    header: str | None = "X-Served-By"
    pattern: str | bytes | None = _DEFAULT_SERVED_BY_PATTERN

    def compiled(self) -> tuple[bytes | None, re.Pattern[bytes] | None]:
        if self.header and header_name_problem(self.header):
            raise LoadSpecError(header_name_problem(self.header))
        hdr = b"\r\n" + self.header.lower().encode("ascii") + b":" if self.header else None
        pat = self.pattern
        if isinstance(pat, str):
            pat = pat.encode()
        try:
            rx = re.compile(pat) if pat else None
        except re.error as exc:
            raise LoadSpecError(f"bad served-by pattern {self.pattern!r}: {exc}") from None
        if rx is not None and rx.groups < 1:
            raise LoadSpecError(f"served-by pattern {self.pattern!r} needs one (group)")
        return hdr, rx


def _positive(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise LoadSpecError(f"{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class ProbeSpec:
    """The probe stream: one light request every `interval` s against the same URL.

    It runs while the load runs; with no load (`LoadSpec.num_conns == 0`) it runs `duration` s
    or until stopped.
    """

    interval: float = DEFAULT_PROBE_INTERVAL_S
    timeout: float = DEFAULT_PROBE_TIMEOUT_S
    duration: float | None = None

    def __post_init__(self) -> None:
        _positive("probe interval", self.interval)
        _positive("probe timeout", self.timeout)
        if self.interval < 0.001:
            raise LoadSpecError(f"probe interval must be at least 1 ms, got {self.interval * 1000:g} ms")
        if self.duration is not None:
            _positive("probe duration", self.duration)


@dataclass(frozen=True)
class LoadSpec:
    """One open-loop load run: `num_conns` connections at `rate` conn/s, one request each.

    `timeout` bounds each connection from its start to its complete reply (httperf's --timeout
    is instead a progress timeout per phase: connect, send, wait, receive).
    """

    url: str
    rate: float
    num_conns: int
    timeout: float = DEFAULT_TIMEOUT_S
    host_header: str | None = None
    served_by: ServedBy | None = field(default_factory=ServedBy)
    max_inflight: int | None = None  # default: the fd limit minus a reserve for the rest of the process
    force: bool = False  # allow runs beyond MAX_CONNECTIONS / MAX_DURATION_S

    def __post_init__(self) -> None:
        self.target  # validates the URL
        if isinstance(self.num_conns, bool) or not isinstance(self.num_conns, int) or self.num_conns < 0:
            raise LoadSpecError(f"number of connections must be a positive integer, got {self.num_conns!r}")
        if self.num_conns > 0 or self.rate != 0:
            _positive("rate", self.rate)
        _positive("timeout", self.timeout)
        if self.max_inflight is not None and self.max_inflight < 1:
            raise LoadSpecError(f"max_inflight must be >= 1, got {self.max_inflight!r}")
        if self.served_by is not None:
            self.served_by.compiled()
        if not self.force:
            problems = self.limit_problems()
            if problems:
                raise LoadLimitError("refusing the run: " + "; ".join(problems))

    @property
    def target(self) -> Target:
        return parse_url(self.url, self.host_header)

    @property
    def planned_duration(self) -> float:
        """Seconds from the first to the last scheduled launch."""
        return (self.num_conns - 1) / self.rate if self.num_conns > 1 else 0.0

    def limit_problems(self) -> list[str]:
        return limit_problems(self.num_conns, self.rate, self.timeout)


def build_request(target: Target) -> bytes:
    return (f"GET {target.uri} HTTP/1.1\r\nHost: {target.host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
            f"Accept: */*\r\nConnection: close\r\n\r\n").encode("latin-1")
