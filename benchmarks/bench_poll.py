"""Benchmark: one cluster-state poll round over 100 hosts with persistent SSH connections.

100 asyncssh servers run in a separate process on loopback and answer the poll script like a
Heartbeat node (so server CPU is not billed to hatui). hatui's SshPool keeps one connection per
host; we time rounds of `collect_state`-style polling (the full POLL_SCRIPT, parsed) and report
wall time and hatui's CPU per round. Target: well under 1 s per round.

Run: .venv/bin/python benchmarks/bench_poll.py [--hosts 100] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hatui.collectors.cluster import POLL_SCRIPT, NodeState, judge_node, node_from_output  # noqa: E402
from hatui.transport import SshPool  # noqa: E402
from tests.support.sshd import loopback_host, make_keys, start_server  # noqa: E402
from tests.test_cluster_state import DRBD9_PRIMARY, node_output  # noqa: E402

OUTPUT = node_output("node", addresses=["10.251.0.11", "10.251.0.100"], drbd=DRBD9_PRIMARY)


def serve(directory: str, count: int, ports, ready) -> None:
    async def main():
        keys = make_keys(Path(directory), ["[127.0.0.1]:*"])
        servers = [await start_server(keys, responder=lambda cmd: (OUTPUT, 0)) for _ in range(count)]
        for i, s in enumerate(servers):
            ports[i] = s.sockets[0].getsockname()[1]
        ready.set()
        await asyncio.Event().wait()
    asyncio.run(main())


async def bench(directory: Path, ports: list[int], rounds: int) -> None:
    from tests.support.sshd import Keys
    keys = Keys(directory / "id_ed25519", directory / "known_hosts", None, None)
    hosts = [loopback_host(f"h{i}", port, keys, connect_timeout_s=10, command_timeout_s=10) for i, port in enumerate(ports)]
    async with SshPool(hosts) as pool:
        t, c = time.perf_counter(), time.process_time()
        await pool.fan_out(pool.hosts, "echo hi")
        print(f"connect {len(hosts)} hosts: {time.perf_counter() - t:.2f} s wall, {time.process_time() - c:.2f} s CPU")
        walls, cpus = [], []
        for _ in range(rounds):
            t, c = time.perf_counter(), time.process_time()
            results = await pool.fan_out(pool.hosts, POLL_SCRIPT)
            for name, result in results.items():
                node = NodeState(host=name, address="127.0.0.1", pair="p", role="master")
                node_from_output(node, result)
                judge_node(node)
                assert node.reachable and node.drbd, node
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        print(f"poll round over {len(hosts)} hosts ({rounds} rounds): wall median {statistics.median(walls) * 1000:.0f} ms, "
              f"p90 {sorted(walls)[int(0.9 * len(walls)) - 1] * 1000:.0f} ms, max {max(walls) * 1000:.0f} ms; "
              f"hatui CPU per round median {statistics.median(cpus) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        ports = multiprocessing.Array("i", args.hosts)
        ready = multiprocessing.Event()
        server = multiprocessing.Process(target=serve, args=(d, args.hosts, ports, ready), daemon=True)
        server.start()
        try:
            if not ready.wait(60):
                sys.exit("servers did not start")
            asyncio.run(bench(Path(d), list(ports), args.rounds))
        finally:
            server.kill()
            server.join(5)


if __name__ == "__main__":
    main()
