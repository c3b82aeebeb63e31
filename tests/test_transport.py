"""The SSH pool against real asyncssh servers on loopback."""

from __future__ import annotations

import socket

import pytest

from hatui.transport import SshPool, TransportError
from tests.support.sshd import loopback_host, make_keys, start_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def servers(tmp_path):
    keys = make_keys(tmp_path, ["[127.0.0.1]:*", "127.0.0.1"])
    started = [await start_server(keys) for _ in range(3)]
    ports = [s.sockets[0].getsockname()[1] for s in started]
    yield keys, ports
    for server in started:
        server.close()
        await server.wait_closed()


async def test_run_returns_status_output_and_duration(servers):
    keys, ports = servers
    async with SshPool([loopback_host("a", ports[0], keys)]) as pool:
        result = await pool.run("a", "echo hello")
        assert (result.exit_status, result.stdout, result.ok) == (0, "hello\n", True)
        assert result.duration_s > 0
        failed = await pool.run("a", "exit 3")
        assert failed.exit_status == 3 and not failed.ok


async def test_connection_is_persistent(servers):
    keys, ports = servers
    async with SshPool([loopback_host("a", ports[0], keys)]) as pool:
        await pool.run("a", "echo 1")
        first = pool._links["a"].conn
        await pool.run("a", "echo 2")
        assert pool._links["a"].conn is first


async def test_command_timeout(servers):
    keys, ports = servers
    async with SshPool([loopback_host("a", ports[0], keys)]) as pool:
        with pytest.raises(TransportError, match="timed out after 0.3 s"):
            await pool.run("a", "sleep 5", timeout=0.3)
        assert (await pool.run("a", "echo again")).stdout == "again\n"  # reconnects


async def test_wrong_host_key_is_refused(servers, tmp_path):
    keys, ports = servers
    bad_known = tmp_path / "bad_known_hosts"
    import asyncssh
    stranger = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    bad_known.write_text(f"[127.0.0.1]:* {stranger}\n")
    host = loopback_host("a", ports[0], keys)
    host.ssh.known_hosts = bad_known
    async with SshPool([host]) as pool:
        with pytest.raises(TransportError, match="host key not trusted"):
            await pool.run("a", "echo hi")


async def test_refused_port_and_backoff(servers):
    keys, _ = servers
    port = free_port()
    async with SshPool([loopback_host("gone", port, keys)]) as pool:
        with pytest.raises(TransportError, match="connection refused"):
            await pool.run("gone", "echo hi")
        with pytest.raises(TransportError, match="retrying in"):
            await pool.run("gone", "echo hi")  # inside the backoff window: fails fast
        pool.reset_backoff("gone")
        with pytest.raises(TransportError, match="connection refused"):
            await pool.run("gone", "echo hi")


async def test_fan_out_isolates_bad_hosts(servers):
    keys, ports = servers
    hosts = [loopback_host(f"h{i}", p, keys) for i, p in enumerate(ports)] + [loopback_host("bad", free_port(), keys)]
    seen = []
    async with SshPool(hosts) as pool:
        pool.listeners.append(lambda outcome, host, command: seen.append((host, command, type(outcome).__name__)))
        results = await pool.fan_out(pool.hosts, lambda name: f"echo {name}")
    assert {n: r.stdout for n, r in results.items() if not isinstance(r, TransportError)} == {
        "h0": "h0\n", "h1": "h1\n", "h2": "h2\n"}
    assert isinstance(results["bad"], TransportError)
    assert ("bad", "echo bad", "TransportError") in seen and len(seen) == 4


async def test_unknown_host_name():
    async with SshPool([]) as pool:
        with pytest.raises(TransportError, match="not a host of this lab"):
            await pool.run("nobody", "true")
