"""Cluster state from real SSH round trips (asyncssh servers on loopback answering like Heartbeat nodes)."""

from __future__ import annotations

import ipaddress
import json

import pytest

from hatui.collectors.cluster import (POLL_SCRIPT, NodeState, check_ha_config, collect_state, judge_node,
                                      node_from_text, split_sections)
from hatui.collectors.severity import Finding, Severity
from hatui.config import parse_lab
from hatui.lab import heartbeat as lab_files
from hatui.transport import SshPool
from tests.support.sshd import make_keys, start_server
from tests.test_config import LAB_TEXT

DRBD9_PRIMARY = """r0 role:Primary
  disk:UpToDate
  slave role:Secondary
    peer-disk:UpToDate
"""


def node_output(name: str, *, heartbeat: bool = True, addresses=(), rsc: str = "local", drbd: str | None = None,
                files: str = "") -> str:
    addr_lines = "\n".join(f"2: eth0    inet {a}/24 brd 10.251.0.255 scope global eth0" for a in addresses)
    hb = "Heartbeat is running on this machine.\n@@rc 0" if heartbeat else "Heartbeat is stopped on this machine.\n@@rc 1"
    rsc_part = f"{rsc}\n@@rc 0" if heartbeat else "\n@@rc 1"
    drbd_part = f"{drbd}\n@@rc 0" if drbd is not None else "@@rc 127"
    return (f"@@hostname\n{name}\n@@hbstatus\n{hb}\n@@rscstatus\n{rsc_part}\n@@addr\n"
            f"1: lo    inet 127.0.0.1/8 scope host lo\n{addr_lines}\n@@uptime\n1234.5 99.0\n0.25 0.10 0.05 1/100 42\n"
            f"@@drbd\n{drbd_part}\n@@crm_mon\n@@rc 127\n{files}")


def heartbeat_files(ha_cf: str, haresources: str, log: str | None = None, ha_cf_rc: int = 0) -> str:
    """The poll's ha.cf, haresources and log sections (no log: ha.cf names no readable logfile)."""
    log_part = f"{log}\n@@rc 0" if log is not None else "@@rc 127"
    return f"@@ha_cf\n{ha_cf}\n@@rc {ha_cf_rc}\n@@haresources\n{haresources}\n@@rc 0\n@@ha_log\n{log_part}\n"


def lab_written_files(lab, host: str, log: str | None = None, **changes: str) -> str:
    """ha.cf and haresources as `hatui lab up` writes them for `host`, with text replaced."""
    pair = lab.pairs["native"]
    ha_cf, haresources = lab_files.ha_cf(lab, pair, host), lab_files.haresources(pair, drbd_available=True)
    for old, new in changes.items():
        ha_cf, haresources = ha_cf.replace(old, new), haresources.replace(old, new)
    return heartbeat_files(ha_cf, haresources, log)


def read_node(lab, host: str, output: str) -> NodeState:
    node = NodeState(host=host, address="10.251.0.11", pair="native", role="master")
    node_from_text(node, output, 0.01)
    check_ha_config(node, lab)
    judge_node(node)
    return node


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


# --- Heartbeat's configuration and log ---------------------------------------------------------

def test_lab_written_ha_cf_and_haresources_match_lab_toml_and_the_log_is_read(read_fixture):
    lab = parse_lab(LAB_TEXT)
    log = read_fixture("heartbeat-log-lab-3.0.6.log")
    node = read_node(lab, "master", node_output("master", files=lab_written_files(lab, "master", log)))
    assert (node.ha_config, node.severity) == ([], Severity.OK)  # an old "node slave: is dead" is history
    assert node.ha_cf.keepalive_ms == 100 and [g.node for g in node.haresources] == ["master"]
    assert len(node.ha_log) == 8 and node.ha_log[-1].kind == "remote_transition_complete"
    assert "node_dead" not in [e.kind for e in node.ha_log]  # only the latest events are kept
    doc = json.loads(json.dumps(_state_json(lab, node)))["nodes"][0]
    assert doc["heartbeat_config"] == []
    assert doc["heartbeat_log"][-3] == {
        "timestamp": "Dec 02 16:50:00", "program": "heartbeat", "level": "info", "kind": "node_status",
        "node": "slave", "detail": "active", "message": "Status update for node slave: status active",
        "severity": "ok"}


def _state_json(lab, node) -> dict:
    from hatui.collectors.cluster import ClusterState

    return ClusterState(lab=lab.name, taken_at=0.0, duration_s=0.0, nodes={node.host: node}, pairs={}).to_json()


async def test_ha_cf_differing_from_lab_toml_is_a_warn_that_says_why(lab_and_pool):
    lab, pool, cluster, _ = lab_and_pool
    drifted = lab_written_files(lab, "slave", **{"keepalive 100ms": "keepalive 200ms",
                                                 "auto_failback on": "auto_failback off",
                                                 "ucast eth1 10.251.1.11": "ucast eth1 10.251.1.99"})
    cluster.outputs = {"master": node_output("master", addresses=["10.251.0.11", "10.251.0.100"],
                                             files=lab_written_files(lab, "master")),
                       "slave": node_output("slave", addresses=["10.251.0.12"], files=drifted)}
    state = await collect_state(lab, pool, pairs=[lab.pairs["native"]], check_service=False)
    master, slave = state.nodes["master"], state.nodes["slave"]
    assert (master.ha_config, master.severity) == ([], Severity.OK)
    assert [(f.severity, f.reason) for f in slave.ha_config] == [
        (Severity.WARN, "ha.cf keepalive 200 ms, lab.toml says 100 ms"),
        (Severity.WARN, "ha.cf has no ucast to master's 10.251.1.11 (ucast to: 10.251.1.99)"),
        (Severity.WARN, "ha.cf auto_failback off, lab.toml says on")]
    assert slave.severity == Severity.WARN and "auto_failback off, lab.toml says on" in slave.reason
    doc = state.to_json()
    assert doc["schema"] == "hatui.status/1"
    assert doc["nodes"][1]["heartbeat_config"][0] == {"severity": "warn",
                                                      "reason": "ha.cf keepalive 200 ms, lab.toml says 100 ms"}
    assert doc["nodes"][1]["heartbeat_log"] is None  # no readable logfile


def test_haresources_differing_from_lab_toml_is_a_warn():
    lab = parse_lab(LAB_TEXT)
    files = lab_written_files(lab, "master", **{"\nmaster drbddisk::r0 IPaddr2": "\nslave IPaddr2"})
    node = read_node(lab, "master", node_output("master", files=files))
    assert [f.reason for f in node.ha_config] == [
        "haresources puts the group on slave, lab.toml's master is master",
        "haresources group IPaddr2::10.251.0.100/24/eth0 hatui-web differs from lab.toml's "
        "drbddisk::r0 IPaddr2::10.251.0.100/24/eth0 hatui-web"]
    assert node.severity == Severity.WARN


def test_unreadable_ha_cf_and_older_poll_output():
    lab = parse_lab(LAB_TEXT)
    missing = heartbeat_files("sed: can't read /etc/ha.d/ha.cf: No such file or directory", "master hatui-web",
                              ha_cf_rc=2)
    node = read_node(lab, "master", node_output("master", files=missing))
    assert node.ha_config[0].reason == "ha.cf not readable: sed: can't read /etc/ha.d/ha.cf: No such file or directory"
    assert node.severity == Severity.WARN
    old = read_node(lab, "master", node_output("master"))  # a poll without these sections
    assert (old.ha_config, old.ha_log, old.severity) == (None, None, Severity.OK)


def test_a_failing_drbdadm_status_is_explained():
    lab = parse_lab(LAB_TEXT)
    output = node_output("master", drbd="r0: No such resource").replace("No such resource\n@@rc 0",
                                                                        "No such resource\n@@rc 10")
    node = read_node(lab, "master", output)
    assert node.problems == ["drbd: drbdadm status failed: r0: No such resource"]
    refused = node_output("master", drbd="r0: State change failed: (-2) Need access to UpToDate data\n"
                                         "Command 'drbdsetup primary r0' terminated with exit code 17")
    node = read_node(lab, "master", refused.replace("exit code 17\n@@rc 0", "exit code 17\n@@rc 11"))
    assert node.problems == ["drbd: drbdadm status failed: r0: state change refused: Need access to UpToDate data (-2)"]


def test_status_text_shows_the_config_checks_and_latest_log_events():
    from hatui.commands.status import render
    from hatui.ui.fake_cluster import failover_state, fake_lab

    state = failover_state(fake_lab())
    lines = render(state).splitlines()
    assert "heartbeat config: ha.cf and haresources match lab.toml on master, slave, vm01a, vm01b, vm02a, vm02b" in lines
    assert "  slave   16:49:54  Local Resource acquisition completed." in lines
    state.nodes["slave"].ha_config = [Finding(Severity.WARN, "ha.cf auto_failback off, lab.toml says on")]
    lines = render(state).splitlines()
    assert lines[lines.index("heartbeat config:") + 1] == "  !  slave: ha.cf auto_failback off, lab.toml says on"
