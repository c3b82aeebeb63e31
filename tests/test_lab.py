"""The local lab: config-file generation (fast, no root) and the real lab (root, `-m lab`).

The lab tests share one lab (the session fixture `lab` in conftest.py) and run in file order; each
leaves the native pair stable for the next. The last one takes the lab down and checks that
nothing is left behind.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from hatui.config import load_lab
from hatui.lab import heartbeat as hb
from hatui.lab import keys
from hatui.lab import netns as nx

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    return load_lab(ROOT / "lab.toml")


# --------------------------------------------------------------------------------------------
# Generation (no root)


def test_ha_cf_from_the_model(model):
    pair = model.pairs["native"]
    master = hb.ha_cf(model, pair, "master").splitlines()
    slave = hb.ha_cf(model, pair, "slave").splitlines()
    for line in ("keepalive 100ms", "warntime 300ms", "deadtime 500ms", "initdead 2000ms", "udpport 694",
                 "auto_failback on", "node master", "node slave", "crm no", "logfile /var/log/ha-log"):
        assert line in master and line in slave
    assert "ucast eth1 10.251.1.12" in master  # the peer's replication address
    assert "ucast eth1 10.251.1.11" in slave
    pair.auto_failback = False
    assert "auto_failback off" in hb.ha_cf(model, pair, "master").splitlines()
    vm = model.pairs["vm01"]
    assert "ucast eth1 10.251.2.32" in hb.ha_cf(model, vm, "vm01a").splitlines()


def test_haresources_keeps_the_order_and_leaves_drbd_out_without_the_standin(model):
    pair = model.pairs["native"]
    text = hb.haresources(pair, drbd_available=False)
    assert text.splitlines()[-1] == "master IPaddr2::10.251.0.100/24/eth0 hatui-web"
    assert "left out drbddisk::r0" in text
    assert hb.haresources(pair, drbd_available=True).splitlines()[-1] == \
        "master drbddisk::r0 IPaddr2::10.251.0.100/24/eth0 hatui-web"
    assert hb.resource_group(pair, False) == (["IPaddr2::10.251.0.100/24/eth0", "hatui-web"], ["drbddisk::r0"])
    assert hb.authkeys("abc") == "auth 1\n1 sha1 abc\n"


def test_web_and_sshd_files_name_the_node():
    conf = hb.nginx_conf("slave")
    assert "add_header X-Served-By slave always;" in conf
    assert "listen 0.0.0.0:80" in conf and "/var/log/nginx-hatui-access.log hatui" in conf and "$msec" in conf
    assert hb.index_html("slave") == "served by slave\n"
    script = hb.web_script()
    assert script.startswith("#!/bin/sh") and "status)" in script and "/run/nginx-hatui.pid" in script
    sshd = hb.sshd_config("slave", 22)
    assert "PasswordAuthentication no" in sshd and "HostKey /etc/ssh/ssh_host_ed25519_key" in sshd


def test_known_hosts_lists_both_keys_for_the_vip(model):
    public = {name: f"ssh-ed25519 KEY{name} root@{name}" for name in model.hosts}
    lines = keys.known_hosts_text(model, public).splitlines()
    assert "10.251.0.11 ssh-ed25519 KEYmaster" in lines
    vip = [line for line in lines if line.startswith("10.251.0.100 ")]
    assert sorted(v.split()[2] for v in vip) == ["KEYmaster", "KEYslave"]


def test_interface_names_fit_the_kernel_limit():
    assert nx.bridge_name("public") == "br-public"
    long = nx.bridge_name("vm-replication")
    assert len(long) <= 15 and long == nx.bridge_name("vm-replication") and long != nx.bridge_name("vm-replicatioX")
    assert len(nx.port_name("a" * 32, "eth0")) <= 15
    assert nx.host_netns("master") == "hatui-master"


def test_lab_up_needs_root(monkeypatch, capsys):
    from hatui.cli import main

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["lab", "up", "--lab", str(ROOT / "lab.toml")]) == 2
    assert "needs root" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# The real lab


def _served_by(vip: str) -> str | None:
    from hatui.lab.pairs import http_served_by
    return http_served_by(vip, timeout=0.5)


def _wait_served_by(vip: str, host: str, timeout_s: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if _served_by(vip) == host:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"{vip} not served by {host} within {timeout_s} s (served by {_served_by(vip)})")


@pytest.mark.lab
def test_vip_is_served_by_the_master(lab):
    import http.client

    conn = http.client.HTTPConnection("10.251.0.100", 80, timeout=2)
    conn.request("GET", "/index.html")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("X-Served-By") == "master"
    assert resp.read() == b"served by master\n"
    conn.close()
    log = lab.state_dir / "nodes" / "master" / "log" / "nginx-hatui-access.log"
    assert "GET /index.html" in log.read_text()


@pytest.mark.lab
def test_a_lab_address_is_unreachable_while_up(lab):
    routes = json.loads(subprocess.run(["ip", "-j", "route", "show", "type", "unreachable"],
                                       capture_output=True, text=True).stdout)
    assert {"10.251.0.0/16"} <= {r["dst"] for r in routes}
    unused = subprocess.run(["ip", "route", "get", "10.251.1.11"], capture_output=True, text=True)
    assert unused.returncode != 0 and "No route to host" in unused.stderr   # unreachable, dropped locally
    public = subprocess.run(["ip", "route", "get", "10.251.0.11"], capture_output=True, text=True)
    assert "dev hatui-host" in public.stdout   # the connected /24 wins


@pytest.mark.lab
def test_second_up_changes_nothing(lab):
    from hatui.lab import build
    from hatui.lab.state import lab_paths, load_state

    before = load_state(lab_paths(lab))["hosts"]
    report = build.up(lab, out=lambda line: None)
    assert report.already_up and not report.steps
    after = load_state(lab_paths(lab))["hosts"]
    assert {h: r["init"] for h, r in before.items()} == {h: r["init"] for h, r in after.items()}


@pytest.mark.lab
async def test_ssh_into_every_host_with_strict_host_keys(lab):
    import asyncssh

    for name in ("master", "slave", "client"):
        host = lab.hosts[name]
        async with asyncssh.connect(str(host.address), port=host.ssh.port, username="root",
                                    known_hosts=str(lab.ssh.known_hosts), client_keys=[str(lab.ssh.key_file)],
                                    connect_timeout=5) as conn:
            result = await conn.run("hostname; cl_status hbstatus", check=False, timeout=10)
        out = result.stdout.splitlines()
        assert out[0] == name
        if name != "client":
            assert result.exit_status == 0 and out[1] == "Heartbeat is running on this machine."
    # The VIP is known with both nodes' keys: it works wherever the VIP is.
    async with asyncssh.connect(str(lab.pairs["native"].vip.ip), username="root", known_hosts=str(lab.ssh.known_hosts),
                                client_keys=[str(lab.ssh.key_file)], connect_timeout=5) as conn:
        assert (await conn.run("hostname", check=True)).stdout.strip() == "master"


@pytest.mark.lab
async def test_ssh_refuses_a_wrong_host_key(lab, tmp_path):
    import asyncssh

    slave_key = (lab.state_dir / "nodes" / "slave" / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{lab.hosts['master'].address} {slave_key[0]} {slave_key[1]}\n")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        async with asyncssh.connect(str(lab.hosts["master"].address), username="root", known_hosts=str(wrong),
                                    client_keys=[str(lab.ssh.key_file)], connect_timeout=5):
            pass


@pytest.mark.lab
def test_stop_heartbeat_fails_over_and_start_fails_back(lab):
    from hatui.lab import faults
    from hatui.lab.pairs import wait_stable

    vip = str(lab.pairs["native"].vip.ip)
    t0 = time.monotonic()
    result = faults.inject(lab, "master", "stop-heartbeat")
    assert result.seconds > 0 and result.action == "stop-heartbeat"
    _wait_served_by(vip, "slave", max(0.0, 5.0 - (time.monotonic() - t0)) + 0.01)
    assert time.monotonic() - t0 < 5.0
    faults.inject(lab, "master", "start-heartbeat")
    _wait_served_by(vip, "master", 15)  # auto_failback on
    wait_stable(lab, lab.pairs["native"], timeout_s=30)


@pytest.mark.lab
def test_crash_fails_over_and_restore_fails_back(lab):
    from hatui.lab import faults
    from hatui.lab.build import status
    from hatui.lab.pairs import wait_stable

    vip = str(lab.pairs["native"].vip.ip)
    result = faults.inject(lab, "master", "crash")
    assert result.seconds < 1.0
    st = status(lab)
    assert st["hosts"]["master"]["running"] is False
    assert _wait_served_by(vip, "slave", 5) < 5
    with pytest.raises(Exception, match="powered off"):
        faults.inject(lab, "master", "stop-heartbeat")
    result = faults.inject(lab, "master", "restore")
    assert result.seconds < 5
    _wait_served_by(vip, "master", 15)
    wait_stable(lab, lab.pairs["native"], timeout_s=30)
    assert status(lab)["pairs"]["native"]["holders"] == ["master"]


@pytest.mark.lab
def test_cut_link_and_heal_link(lab):
    from hatui.lab import faults

    def ping() -> bool:
        return subprocess.run(["ping", "-c", "1", "-W", "1", str(lab.hosts["client"].address)],
                              capture_output=True).returncode == 0

    assert ping()
    faults.inject(lab, "client", "cut-link", "public")
    assert not ping()
    faults.inject(lab, "client", "heal-link", "public")
    assert ping()


@pytest.mark.lab
def test_a_vm_host_boots_on_its_proxmox_nodes_bridges_and_powers_off(lab):
    from hatui.lab import hosts
    from hatui.lab.state import lab_paths, load_state

    bridges = {"public": hosts.add_bridge(lab, "hatui-pve1", "vmbr0", uplink="public"),
               "vm-replication": hosts.add_bridge(lab, "hatui-pve1", "vmbr1", uplink="vm-replication")}
    result = hosts.boot_lab_host(lab, "vm01a", start_hb=False, bridges=bridges)
    assert result.seconds < 2
    try:
        assert hosts.exec_in(lab, "vm01a", "hostname", check=True).stdout.strip() == "vm01a"
        assert subprocess.run(["ping", "-c", "1", "-W", "1", "10.251.0.31"], capture_output=True).returncode == 0
        nics = load_state(lab_paths(lab))["hosts"]["vm01a"]["spec"]["nics"]
        assert {(n["bridge_netns"], n["bridge"]) for n in nics} == {("hatui-pve1", "vmbr0"), ("hatui-pve1", "vmbr1")}
    finally:
        assert hosts.poweroff_lab_host(lab, "vm01a", remove_network=True) < 1
    assert "hatui-vm01a" not in nx.netns_list()
    assert "vm01a" not in load_state(lab_paths(lab))["hosts"]


@pytest.mark.lab
def test_status_json(lab, capsys):
    from hatui.cli import main

    assert main(["lab", "status", "--json", "--lab", str(lab.path)]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["phase"] == "up" and st["state_dir"] == str(lab.state_dir)
    assert {n for n, h in st["hosts"].items() if h["running"]} == {"master", "slave", "client"}
    assert st["pairs"]["native"]["holders"] == ["master"] and st["pairs"]["native"]["served_by"] == "master"


@pytest.mark.lab
def test_hatui_status_finds_heartbeat_files_matching_lab_toml_and_log_events(lab, capsys):
    from hatui.cli import main

    assert main(["status", "--json", "--pair", "native", "--lab", str(lab.path)]) == 0
    nodes = {n["host"]: n for n in json.loads(capsys.readouterr().out)["nodes"]}
    for host in ("master", "slave"):
        assert nodes[host]["heartbeat_config"] == [], f"{host}: {nodes[host]['heartbeat_config']}"
        assert nodes[host]["heartbeat_log"], f"{host}: no event in the tail of /var/log/ha-log"
    assert main(["status", "--pair", "native", "--lab", str(lab.path)]) == 0
    text = capsys.readouterr().out
    assert "heartbeat config: ha.cf and haresources match lab.toml on master, slave" in text
    assert "heartbeat log (last 3 events per node):" in text


def _leftovers(lab) -> list[str]:
    found = [f"netns {n}" for n in nx.netns_list() if n.startswith("hatui-")]
    with open("/proc/mounts") as fh:
        found += [f"mount {line.split()[1]}" for line in fh if "hatui" in line or str(lab.state_dir) in line]
    routes = subprocess.run(["ip", "-j", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    for r in json.loads(routes or "[]"):
        dst = r.get("dst", "")
        if dst not in ("", "default") and ":" not in dst:
            net = ipaddress.IPv4Network(dst if "/" in dst else dst + "/32", strict=False)
            if net.overlaps(lab.address_range):
                found.append(f"route {r.get('type', '')} {dst}")
    if os.path.exists("/sys/class/net/hatui-host"):
        found.append("interface hatui-host")
    ps = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True).stdout
    for line in ps.splitlines():
        pid, stat, args = line.split(None, 2)
        if stat.startswith("Z"):
            continue  # zombies of process_api wait there until it reaps them (recipe pitfall 9)
        if "hatui-init-" in args or str(lab.state_dir) in args:
            found.append(f"process {pid} {args[:60]}")
    return found


@pytest.mark.lab
def test_down_leaves_nothing_behind_and_is_harmless_twice(lab_session):
    lab = lab_session
    from hatui.lab import build
    from hatui.lab.state import lab_paths, load_state

    recorded = [h["init"]["pid"] for h in load_state(lab_paths(lab))["hosts"].values() if h.get("init")]
    report = build.down(lab, out=lambda line: None)
    assert not report.problems
    assert report.seconds < 1.0, f"lab down took {report.seconds:.2f} s"
    assert _leftovers(lab) == []
    assert not lab.state_dir.exists()
    for pid in recorded:
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    unused = subprocess.run(["ip", "route", "get", "10.251.1.11"], capture_output=True, text=True)
    assert "hatui" not in unused.stdout   # no lab route or interface remains
    assert build.down(lab, out=lambda line: None).nothing_to_do


@pytest.mark.lab
def test_up_refuses_a_namespace_that_is_not_ours_and_builds_nothing(lab_session):
    lab = lab_session
    from hatui.errors import HatuiError
    from hatui.lab import build

    # The session lab is down now (previous test).
    run_netns_mounted = nx.is_mountpoint("/run/netns")
    subprocess.run(["ip", "netns", "add", "hatui-master"], check=True)
    try:
        with pytest.raises(HatuiError, match="hatui-master exists and is not this lab's"):
            build.up(lab, out=lambda line: None)
        assert [n for n in nx.netns_list() if n.startswith("hatui-")] == ["hatui-master"]
        assert not lab.state_dir.exists()
    finally:
        subprocess.run(["ip", "netns", "delete", "hatui-master"], check=True)
        if not run_netns_mounted and not nx.netns_list():
            subprocess.run(["umount", "/run/netns"], check=False)
    assert _leftovers(lab) == []
