"""SSH transport: one persistent asyncssh connection per host.

Strict host key checking from the lab's known_hosts, key auth, connect and command timeouts,
reconnect with backoff, bounded concurrency. `run()` raises `TransportError` when the host
cannot be reached (the message says why); a command that runs and fails is a normal result.
`fan_out()` never fails as a whole: it returns a result or an error per host.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import asyncssh

from hatui.config import Host
from hatui.errors import HatuiError

BACKOFF_START_S = 0.25
BACKOFF_MAX_S = 5.0


@dataclass
class CommandResult:
    host: str
    command: str
    exit_status: int | None
    stdout: str
    stderr: str
    duration_s: float
    started_at: float  # wall clock (time.time())

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class TransportError(HatuiError):
    """The host could not be reached or did not answer in time."""

    def __init__(self, host: str, reason: str):
        self.host = host
        self.reason = reason
        super().__init__(f"{host}: {reason}")


CommandListener = Callable[[CommandResult | TransportError, str, str], None]


def describe_ssh_error(exc: BaseException, host: Host, timeout: float) -> str:
    """A short reason an operator can act on."""
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return f"host key not trusted for {host.address} (known_hosts: {host.ssh.known_hosts})"
    if isinstance(exc, asyncssh.PermissionDenied):
        return f"permission denied for {host.ssh.user}@{host.address} (key: {host.ssh.key_file})"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"timeout after {timeout:g} s connecting to {host.address}:{host.ssh.port}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {host.address}:{host.ssh.port}"
    if isinstance(exc, asyncssh.DisconnectError):
        return f"disconnected: {exc.reason}"
    if isinstance(exc, OSError):
        return f"unreachable: {exc.strerror or exc}"
    if isinstance(exc, asyncssh.Error):
        return f"ssh error: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


class _HostLink:
    """The connection to one host, with its reconnect backoff."""

    def __init__(self, host: Host):
        self.host = host
        self.conn: asyncssh.SSHClientConnection | None = None
        self.lock = asyncio.Lock()
        self.backoff = 0.0
        self.retry_at = 0.0
        self.last_error: str | None = None

    async def connection(self) -> asyncssh.SSHClientConnection:
        async with self.lock:
            if self.conn is not None and not self.conn.is_closed():
                return self.conn
            self.conn = None
            now = time.monotonic()
            if now < self.retry_at and self.last_error:
                raise TransportError(self.host.name, f"{self.last_error} (retrying in {self.retry_at - now:.1f} s)")
            ssh = self.host.ssh
            try:
                self.conn = await asyncio.wait_for(
                    asyncssh.connect(
                        str(self.host.address), port=ssh.port, username=ssh.user,
                        client_keys=[str(ssh.key_file)] if ssh.key_file else None,
                        known_hosts=str(ssh.known_hosts) if ssh.known_hosts else (),
                        agent_path=None, config=None, keepalive_interval=5, keepalive_count_max=2,
                        connect_timeout=ssh.connect_timeout_s,
                    ),
                    ssh.connect_timeout_s + 1,
                )
            except (OSError, asyncssh.Error, asyncio.TimeoutError, ValueError) as exc:
                self.last_error = describe_ssh_error(exc, self.host, ssh.connect_timeout_s)
                self.backoff = min(BACKOFF_MAX_S, self.backoff * 2 if self.backoff else BACKOFF_START_S)
                self.retry_at = time.monotonic() + self.backoff
                raise TransportError(self.host.name, self.last_error) from None
            self.backoff, self.retry_at, self.last_error = 0.0, 0.0, None
            return self.conn

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.abort()
            self.conn = None

    def reset_backoff(self) -> None:
        self.backoff, self.retry_at = 0.0, 0.0


class SshPool:
    """Persistent SSH connections to the lab's hosts.

    `listeners` are told about every command sent (for the journal and the TUI's log):
    `listener(result_or_error, host, command)`.
    """

    def __init__(self, hosts: dict[str, Host] | Iterable[Host], *, max_concurrency: int = 64):
        items = hosts.values() if isinstance(hosts, dict) else hosts
        self._links = {h.name: _HostLink(h) for h in items}
        self._limit = asyncio.Semaphore(max_concurrency)
        self.listeners: list[CommandListener] = []

    @property
    def hosts(self) -> list[str]:
        return list(self._links)

    def host(self, name: str) -> Host:
        return self._link(name).host

    def _link(self, name: str) -> _HostLink:
        try:
            return self._links[name]
        except KeyError:
            raise TransportError(name, "not a host of this lab") from None

    async def run(self, host: str, command: str, *, timeout: float | None = None,
                  input: str | None = None) -> CommandResult:
        link = self._link(host)
        limit = timeout if timeout is not None else link.host.ssh.command_timeout_s
        started_wall, started = time.time(), time.monotonic()
        async with self._limit:
            try:
                conn = await link.connection()
                try:
                    completed = await asyncio.wait_for(conn.run(command, check=False, input=input), limit)
                except (asyncio.TimeoutError, TimeoutError):
                    link.drop()  # the channel may be wedged; start clean next time
                    raise TransportError(host, f"command timed out after {limit:g} s: {command}") from None
                except (OSError, asyncssh.Error) as exc:
                    link.drop()
                    raise TransportError(host, f"connection lost: {describe_ssh_error(exc, link.host, limit)}") from None
            except TransportError as error:
                self._tell(error, host, command)
                raise
        result = CommandResult(
            host=host, command=command, exit_status=completed.exit_status,
            stdout=_text(completed.stdout), stderr=_text(completed.stderr),
            duration_s=time.monotonic() - started, started_at=started_wall,
        )
        self._tell(result, host, command)
        return result

    async def fan_out(self, hosts: Iterable[str], command: str | Callable[[str], str], *,
                      timeout: float | None = None) -> dict[str, CommandResult | TransportError]:
        """Run a command on many hosts at once; one bad host never fails the rest."""
        names = list(hosts)

        async def one(name: str) -> CommandResult | TransportError:
            try:
                return await self.run(name, command(name) if callable(command) else command, timeout=timeout)
            except TransportError as error:
                return error

        results = await asyncio.gather(*(one(n) for n in names))
        return dict(zip(names, results))

    def reset_backoff(self, host: str | None = None) -> None:
        """Forget the backoff (e.g. right after a host was restored) so the next call connects at once."""
        for name, link in self._links.items():
            if host is None or name == host:
                link.reset_backoff()

    def _tell(self, outcome, host: str, command: str) -> None:
        for listener in self.listeners:
            try:
                listener(outcome, host, command)
            except Exception:  # a broken listener must not break the transport
                pass

    async def close(self) -> None:
        for link in self._links.values():
            if link.conn is not None:
                link.conn.close()
        for link in self._links.values():
            if link.conn is not None:
                try:
                    await asyncio.wait_for(link.conn.wait_closed(), 2)
                except (asyncio.TimeoutError, OSError, asyncssh.Error):
                    pass
                link.conn = None

    async def __aenter__(self) -> "SshPool":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
