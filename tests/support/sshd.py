"""asyncssh servers on loopback for transport tests and the poll benchmark.

Each server answers a few canned commands the way a Heartbeat node would, so the
collectors can be exercised without the lab.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from hatui.config import Host, Nic, SshSettings


@dataclass
class Keys:
    client_key: Path
    known_hosts: Path
    host_key: asyncssh.SSHKey
    authorized: asyncssh.SSHAuthorizedKeys


def make_keys(directory: Path, host_patterns: list[str]) -> Keys:
    client = asyncssh.generate_private_key("ssh-ed25519")
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_path = directory / "id_ed25519"
    client.write_private_key(client_path)
    client_path.chmod(0o600)
    public = host_key.export_public_key().decode().strip()
    lines = [f"{pattern} {public}" for pattern in host_patterns]
    known = directory / "known_hosts"
    known.write_text("\n".join(lines) + "\n")
    authorized = asyncssh.import_authorized_keys(client.export_public_key().decode())
    return Keys(client_path, known, host_key, authorized)


def respond(command: str) -> tuple[str, int]:
    """Canned answers: enough of a Heartbeat node for the collectors."""
    if command.startswith("sleep"):
        return "", -1  # handled by the caller
    if command.startswith("echo "):
        return command[5:] + "\n", 0
    if command.startswith("exit "):
        return "", int(command.split()[1])
    return f"ran: {command}\n", 0


def _process_factory(responder):
    async def handle(process: asyncssh.SSHServerProcess) -> None:
        command = process.command or ""
        if command.startswith("sleep "):
            await asyncio.sleep(float(command.split()[1]))
            process.exit(0)
            return
        out, status = responder(command)
        process.stdout.write(out)
        process.exit(status)
    return handle


class _Server(asyncssh.SSHServer):
    def __init__(self, keys: Keys):
        self._keys = keys

    def begin_auth(self, username):
        return True

    def public_key_auth_supported(self):
        return True

    def validate_public_key(self, username, key):
        return self._keys.authorized.validate(key, "127.0.0.1", "127.0.0.1") is not None


async def start_server(keys: Keys, port: int = 0, responder=respond, host: str = "127.0.0.1"):
    return await asyncssh.listen(
        host, port, server_host_keys=[keys.host_key],
        server_factory=lambda: _Server(keys),
        process_factory=_process_factory(responder), encoding="utf-8",
    )


def loopback_host(name: str, port: int, keys: Keys, address: str = "127.0.0.1", **ssh) -> Host:
    settings = SshSettings(user="root", port=port, key_file=keys.client_key, known_hosts=keys.known_hosts,
                           connect_timeout_s=ssh.get("connect_timeout_s", 2.0),
                           command_timeout_s=ssh.get("command_timeout_s", 2.0))
    nic = Nic("eth0", "public", ipaddress.IPv4Address(address))
    return Host(name=name, stack="native", role="server", nics={"eth0": nic}, ssh=settings,
                address=ipaddress.IPv4Address(address))
