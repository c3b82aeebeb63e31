"""Cluster state from real SSH round trips (asyncssh servers on loopback answering like Heartbeat nodes)."""

from __future__ import annotations

import ipaddress
import json

import pytest

from hatui.collectors.cluster import POLL_SCRIPT, collect_state, split_sections
from hatui.collectors.severity import Severity
from hatui.config import parse_lab
from hatui.transport import SshPool
from tests.support.sshd import make_keys, start_server
from tests.test_config import LAB_TEXT

DRBD9_PRIMARY = """r0 role:Primary
  disk:UpToDate
  slave role:Secondary
    peer-disk:UpToDate
"""


def node_output(name: str, *, heartbeat: bool = True, addresses=(), rsc: str = "local", drbd: str | None = None) -> str:
    addr_lines = "\n".join(f"2: eth0    inet {a}/24 brd 10.251.0.255 scope global eth0" for a in addresses)
    hb = "Heartbeat is running on this machine.\n@@rc 0" if heartbeat else "Heartbeat is stopped on this machine.\n@@rc 1"
    rsc_part = f"{rsc}\n@@rc 0" if heartbeat else "\n@@rc 1"
    drbd_part = f"{drbd}\n@@rc 0" if drbd is not None else "@@rc 127"
    return (f"@@hostname\n{name}\n@@hbstatus\n{hb}\n@@rscstatus\n{rsc_part}\n@@addr\n"
            f"1: lo    inet 127.0.0.1/8 scope host lo\n{addr_lines}\n@@uptime\n1234.5 99.0\n0.25 0.10 0.05 1/100 42\n"
            f"@@drbd\n{drbd_part}\n@@crm_mon\n@@rc 127\n")


class Cluster:
    """Canned node outputs keyed by node; tests flip them to simulate a takeover."""

    def __init__(self):
        self.outputs = {}

    def responder_for(self, name):
        def respond(command):
            assert command == POLL_SCRIPT
            return self.outputs[name], 0
        return respond


@pytest.fixture
async def lab_and_pool(tmp_path):
    keys = make_keys(tmp_path, ["[127.0.0.1]:*"])
    cluster = Cluster()
    servers = {n: await start_server(keys, responder=cluster.responder_for(n)) for n in ("master", "slave")}
    lab = parse_lab(LAB_TEXT)
    for name, server in servers.items():  # point the lab's hosts at the loopback servers
        host = lab.hosts[name]
        host.address = ipaddress.IPv4Address("127.0.0.1")
        host.ssh.port = server.sockets[0].getsockname()[1]
        host.ssh.key_file, host.ssh.known_hosts = keys.client_key, keys.known_hosts
        host.ssh.connect_timeout_s = host.ssh.command_timeout_s = 2
    pool = SshPool([lab.hosts["master"], lab.hosts["slave"]])
    yield lab, pool, cluster, servers
    await pool.close()
    for s in servers.values():
        s.close()


def test_split_sections():
    sections = split_sections(node_output("m", addresses=["10.251.0.11"]))
    assert sections["hostname"].text == "m" and sections["hbstatus"].rc == 0 and sections["drbd"].rc == 127


async def test_master_holds_vip(lab_and_pool):
    lab, pool, cluster, _ = lab_and_pool
    cluster.outputs = {"master": node_output("master", addresses=["10.251.0.11", "10.251.0.100"], drbd=DRBD9_PRIMARY),
                       "slave": node_output("slave", addresses=["10.251.0.12"])}
    state = await collect_state(lab, pool, pairs=[lab.pairs["native"]], check_service=False)
    pair = state.pairs["native"]
    assert pair.vip_owner == "master" and pair.severity == Severity.OK
    master = state.nodes["master"]
    assert (master.reachable, master.heartbeat, master.rscstatus, master.load1, master.uptime_s) == (True, "running", "local", 0.25, 1234.5)
    assert master.drbd[0].role == "Primary" and master.drbd[0].peers[0].disk == "UpToDate"
    assert not state.nodes["slave"].drbd_available
    doc = json.loads(json.dumps(state.to_json()))
    assert doc["schema"] == "hatui.status/1" and doc["pairs"][0]["vip_owner"] == "master"


async def test_takeover_and_split_brain(lab_and_pool):
    lab, pool, cluster, _ = lab_and_pool
    cluster.outputs = {"master": node_output("master", heartbeat=False, addresses=["10.251.0.11"]),
                       "slave": node_output("slave", addresses=["10.251.0.12", "10.251.0.100"], rsc="all")}
    state = await collect_state(lab, pool, pairs=[lab.pairs["native"]], check_service=False)
    pair = state.pairs["native"]
    assert pair.vip_owner == "slave" and pair.severity == Severity.WARN and "not the master" in pair.reason
    assert state.nodes["master"].heartbeat == "stopped" and state.nodes["master"].rscstatus is None
    cluster.outputs["master"] = node_output("master", addresses=["10.251.0.11", "10.251.0.100"], rsc="all")
    state = await collect_state(lab, pool, pairs=[lab.pairs["native"]], check_service=False)
    assert state.pairs["native"].vip_owner is None and state.pairs["native"].severity == Severity.ALERT
    assert "split brain" in state.pairs["native"].reason


async def test_unreachable_node_is_shown_not_raised(lab_and_pool):
    lab, pool, cluster, servers = lab_and_pool
    cluster.outputs = {"master": node_output("master", addresses=["10.251.0.11", "10.251.0.100"])}
    servers["slave"].close()
    await servers["slave"].wait_closed()
    state = await collect_state(lab, pool, pairs=[lab.pairs["native"]], check_service=False)
    slave = state.nodes["slave"]
    assert not slave.reachable and "refused" in slave.error and slave.severity == Severity.ALERT
    assert state.pairs["native"].vip_owner == "master"


async def test_garbled_output_is_a_problem_not_a_crash(lab_and_pool):
    lab, pool, cluster, _ = lab_and_pool
    cluster.outputs = {"master": "\x00\x01 garbage \xff", "slave": "@@hostname\nslave\n@@drbd\nr0 role:Wibble\n@@rc 0\n"}
    state = await collect_state(lab, pool, pairs=[lab.pairs["native"]], check_service=False)
    assert state.nodes["master"].problems and state.nodes["master"].severity >= Severity.WARN
    assert state.pairs["native"].severity == Severity.ALERT  # nobody holds the VIP
