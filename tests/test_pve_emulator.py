"""The Proxmox VE emulator, driven by proxmoxer 2.3 end to end over HTTPS (proxmox-api.md).

One emulator process per module (fresh CA, free loopback port), killed by PID at teardown.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests
from proxmoxer import AuthenticationError, ProxmoxAPI, ResourceException
from proxmoxer.tools import Tasks

from hatui.lab.pve.launch import EmulatorProcess

UPID_RE = re.compile(r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-F]{8}):([0-9A-F]{8,9}):([0-9A-F]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$")
STUDY = [("vm01a", 101, "pve1"), ("vm01b", 102, "pve1"), ("vm02a", 103, "pve2"), ("vm02b", 104, "pve2")]
AUTH_DELAY = 0.2


def study_params(name: str, vmid: int) -> dict[str, object]:
    return {
        "vmid": vmid, "name": name, "cores": 1, "memory": 512, "scsihw": "virtio-scsi-single",
        "scsi0": "local-lvm:50", "scsi1": "local-lvm:10", "net0": "virtio,bridge=vmbr0", "net1": "virtio,bridge=vmbr1", "ostype": "l26",
    }  # fmt: skip


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    state = tmp_path_factory.mktemp("pve-emulator")
    proc = EmulatorProcess(
        state,
        extra_args=["--auth-fail-delay", str(AUTH_DELAY), "--time-scale", "0.5", "--ha-interval", "0.2",
                    "--backend", "hatui.lab.pve.backend:FaultInjectingBackend"],
    )  # fmt: skip
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        assert proc.proc is None


@pytest.fixture(scope="module")
def px(emu):
    info = emu.info
    user, _, name = info.token_id.partition("!")
    return ProxmoxAPI(info.endpoint, user=user, token_name=name, token_value=emu.token_secret(), verify_ssl=str(info.ca_file), timeout=10)


@pytest.fixture(scope="module")
def ticket_px(emu):
    return ProxmoxAPI(emu.info.endpoint, user="root@pam", password=emu.root_password(), verify_ssl=str(emu.info.ca_file), timeout=10)


def wait(px, upid: str) -> dict:
    status = Tasks.blocking_status(px, upid, timeout=20, polling_interval=0.05)
    assert status is not None, f"task {upid} did not finish"
    return status


def log_lines(px, upid: str) -> list[str]:
    node = Tasks.decode_upid(upid)["node"]
    return [line["t"] for line in px.nodes(node).tasks(upid).log.get(limit=0)]


@pytest.fixture(scope="module")
def study_vms(px):
    """The study's four VMs (1 core, 512 MB, 50 + 10 GB, two NICs), created in parallel."""
    upids = [px.nodes(node).qemu.post(**study_params(name, vmid)) for name, vmid, node in STUDY]
    for upid in upids:
        assert wait(px, upid)["exitstatus"] == "OK"
    return STUDY


def raises(fn, *args, **kwargs) -> ResourceException:
    with pytest.raises(ResourceException) as info:
        fn(*args, **kwargs)
    return info.value


# --- files, TLS, version --------------------------------------------------------------------------


def test_state_dir_files(emu):
    info = emu.info
    state = info.state_dir
    for name in ("ca.pem", "pve-ssl.pem", "fingerprint", "token.id", "emulator.json"):
        assert (state / name).is_file(), name
    for name in ("token.secret", "root.password", "authkey.key", "pve-ssl.key", "ca-key.pem"):
        assert (state / name).stat().st_mode & 0o777 == 0o600, name
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", info.fingerprint)
    assert (state / "fingerprint").read_text().strip() == info.fingerprint
    assert re.fullmatch(r"[0-9a-f-]{36}", emu.token_secret())
    assert emu.token_secret() not in (state / "stdout.log").read_text()
    assert emu.token_secret() not in (state / "emulator.json").read_text()
    assert info.host == "127.0.0.1"


def test_version_and_headers(emu, px):
    assert px.version.get() == {"version": "8.4.1", "release": "8.4", "repoid": "2a5fa54a8503f96d"}
    r = requests.get(emu.info.url + "/api2/json/version", headers={"Authorization": f"PVEAPIToken={emu.info.token_id}={emu.token_secret()}"}, verify=str(emu.info.ca_file), timeout=10)
    assert r.status_code == 200 and r.reason == "OK"
    assert r.headers["Server"] == "pve-api-daemon/3.0"
    assert r.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert r.headers["Cache-Control"] == "max-age=0" and r.headers["Pragma"] == "no-cache"
    assert r.headers["Expires"] == r.headers["Date"]
    assert "Set-Cookie" not in r.headers


def test_self_signed_certificate_is_refused_without_the_ca(emu):
    user, _, name = emu.info.token_id.partition("!")
    api = ProxmoxAPI(emu.info.endpoint, user=user, token_name=name, token_value=emu.token_secret(), verify_ssl=True)
    with pytest.raises(requests.exceptions.SSLError):
        api.version.get()


# --- cluster views ------------------------------------------------------------------------------


def test_cluster_status_nodes_nextid(px, study_vms):
    status = px.cluster.status.get()
    assert status[0] == {"type": "cluster", "id": "cluster", "name": "lab", "nodes": 2, "quorate": 1, "version": 5}
    assert [(n["name"], n["online"], n["local"]) for n in status[1:]] == [("pve1", 1, 1), ("pve2", 1, 0)]
    nodes = px.nodes.get()
    assert {n["node"]: n["status"] for n in nodes} == {"pve1": "online", "pve2": "online"}
    assert px.nodes("pve1").status.get()["pveversion"].startswith("pve-manager/8.4.1/")
    assert px.cluster.nextid.get() == "100"
    assert px.cluster.nextid.get(vmid=200) == "200"
    err = raises(px.cluster.nextid.get, vmid=101)
    assert (err.status_code, err.content, err.errors) == (400, "Parameter verification failed.", {"vmid": "VM 101 already exists"})


def test_study_vms_created_with_the_spec(px, study_vms):
    res = {r["vmid"]: r for r in px.cluster.resources.get(type="vm")}
    assert sorted(res) == [101, 102, 103, 104]
    for name, vmid, node in study_vms:
        r = res[vmid]
        assert (r["name"], r["node"], r["type"], r["status"], r["maxcpu"], r["maxmem"], r["maxdisk"]) == (name, node, "qemu", "stopped", 1, 512 * 1048576, 50 * 1073741824)
        cfg = px.nodes(node).qemu(vmid).config.get()
        assert cfg["name"] == name and cfg["cores"] == 1 and cfg["memory"] == "512"
        assert cfg["scsi0"] == f"local-lvm:vm-{vmid}-disk-0,size=50G"
        assert cfg["scsi1"] == f"local-lvm:vm-{vmid}-disk-1,size=10G"
        assert re.fullmatch(r"virtio=BC:24:11(:[0-9A-F]{2}){3},bridge=vmbr0", cfg["net0"])
        assert re.fullmatch(r"virtio=BC:24:11(:[0-9A-F]{2}){3},bridge=vmbr1", cfg["net1"])
        assert cfg["boot"] == "order=scsi0;net0" and re.fullmatch(r"[0-9a-f]{40}", cfg["digest"])
        assert "lock" not in cfg
    assert [v["vmid"] for v in px.nodes("pve2").qemu.get()] == [103, 104]
    entries = px.cluster.resources.get()
    assert {e["type"] for e in entries} == {"qemu", "node", "storage"}


def test_create_task_upid_status_and_log(px):
    upid = px.nodes("pve1").qemu.post(vmid=150, name="scratch", memory=64)
    m = UPID_RE.match(upid)
    assert m and m.group(1) == "pve1" and m.group(6) == "qmcreate" and m.group(7) == "150" and m.group(8) == "hatui@pve!tui"
    decoded = Tasks.decode_upid(upid)
    assert decoded["node"] == "pve1" and decoded["user"] == "hatui@pve" and decoded["comment"] == ""
    running = px.nodes("pve1").tasks(upid).status.get()
    assert running["status"] == "running" and "exitstatus" not in running
    assert px.nodes("pve1").qemu(150).status.current.get()["lock"] == "create"
    final = wait(px, upid)
    assert final == {**running, "status": "stopped", "exitstatus": "OK"}
    assert final["tokenid"] == "tui" and final["user"] == "hatui@pve"
    log = px.nodes("pve1").tasks(upid).log.get()
    assert log[-1] == {"n": len(log), "t": "TASK OK"}
    archive = px.nodes("pve1").tasks.get(typefilter="qmcreate", vmid=150)
    assert archive[0]["upid"] == upid and archive[0]["status"] == "OK" and "endtime" in archive[0]
    err = raises(px.nodes("pve2").tasks(upid).status.get)
    assert (err.status_code, err.errors) == (400, {"upid": "no such task"})
    err = raises(px.nodes("pve1").tasks("UPID:nope").status.get)
    assert err.errors == {"upid": "unable to parse worker upid"}
    assert wait(px, px.nodes("pve1").qemu(150).delete(purge=1))["exitstatus"] == "OK"
    assert 150 not in [v["vmid"] for v in px.nodes("pve1").qemu.get()]


# --- power, snapshots ----------------------------------------------------------------------------


def test_start_snapshot_rollback_delete(px, study_vms, emu):
    vm = px.nodes("pve1").qemu(101)
    upid = vm.status.start.post()
    assert Tasks.decode_upid(upid)["type"] == "qmstart"
    assert wait(px, upid)["exitstatus"] == "OK"
    cur = vm.status.current.get()
    assert (cur["status"], cur["qmpstatus"], cur["ha"]) == ("running", "running", {"managed": 0})
    again = wait(px, vm.status.start.post())
    assert again["exitstatus"] == "VM 101 already running"

    assert wait(px, vm.snapshot.post(snapname="base", description="clean"))["exitstatus"] == "OK"
    upid = vm.snapshot.post(snapname="ram", vmstate=1)
    assert log_lines(px, wait(px, upid)["upid"])[0] == "saving VM state and RAM using storage 'local-lvm'"
    snaps = vm.snapshot.get()
    assert [s["name"] for s in snaps] == ["base", "ram", "current"]
    assert snaps[0]["vmstate"] == 0 and snaps[0]["description"] == "clean" and "parent" not in snaps[0]
    assert snaps[1]["vmstate"] == 1 and snaps[1]["parent"] == "base"
    assert snaps[2]["description"] == "You are here!" and snaps[2]["running"] == 1 and snaps[2]["parent"] == "ram"
    assert vm.snapshot("base").config.get()["description"] == "clean"
    err = raises(vm.snapshot("nope").config.get)
    assert (err.status_code, err.content) == (500, "snapshot 'nope' does not exist")
    assert wait(px, vm.snapshot.post(snapname="base"))["exitstatus"] == "snapshot name 'base' already used"
    err = raises(vm.snapshot.post, snapname="current")
    assert err.content == "unable to use snapshot name 'current' (reserved name)"

    # rollback to a disk-only snapshot stops the running VM; to a RAM snapshot it runs again
    assert wait(px, vm.snapshot("base").rollback.post())["exitstatus"] == "OK"
    assert vm.status.current.get()["status"] == "stopped"
    assert vm.snapshot.get()[-1]["parent"] == "base"
    assert wait(px, vm.snapshot("ram").rollback.post())["exitstatus"] == "OK"
    assert vm.status.current.get()["status"] == "running"

    assert wait(px, vm.snapshot("base").delete())["exitstatus"] == "OK"
    snaps = vm.snapshot.get()
    assert [s["name"] for s in snaps] == ["ram", "current"] and "parent" not in snaps[0]
    assert wait(px, vm.snapshot("gone").delete())["exitstatus"] == "snapshot 'gone' does not exist"
    assert wait(px, vm.snapshot("gone").rollback.post())["exitstatus"] == "snapshot 'gone' does not exist"

    assert wait(px, vm.status.stop.post())["exitstatus"] == "OK"
    assert vm.status.current.get()["status"] == "stopped"
    assert wait(px, vm.status.stop.post())["exitstatus"] == "OK"  # stopping a stopped VM is fine
    err = raises(vm.status.reboot.post)
    assert (err.status_code, err.content) == (500, "VM 101 not running")

    calls = (emu.info.state_dir / "backend-calls.log").read_text().splitlines()
    assert "start 101 pve1" in calls and "snapshot 101 pve1 base" in calls and "rollback 101 pve1 ram" in calls


def test_suspend_resume_and_shutdown(px, study_vms):
    vm = px.nodes("pve1").qemu(102)
    assert wait(px, vm.status.start.post())["exitstatus"] == "OK"
    upid = vm.status.suspend.post()
    assert Tasks.decode_upid(upid)["type"] == "qmpause"
    wait(px, upid)
    cur = vm.status.current.get()
    assert (cur["status"], cur["qmpstatus"]) == ("running", "paused")
    assert {"vmid": 102, "status": "paused"}.items() <= next(r for r in px.cluster.resources.get(type="vm") if r["vmid"] == 102).items()
    err = raises(vm.status.shutdown.post)
    assert (err.status_code, err.content) == (500, "VM is paused - cannot shutdown")
    wait(px, vm.status.resume.post())
    assert vm.status.current.get()["qmpstatus"] == "running"
    assert wait(px, vm.status.shutdown.post())["exitstatus"] == "OK"
    assert vm.status.current.get()["status"] == "stopped"


# --- documented error cases ----------------------------------------------------------------------


def test_wrong_token_is_401_with_empty_body(emu):
    user, _, name = emu.info.token_id.partition("!")
    bad = ProxmoxAPI(emu.info.endpoint, user=user, token_name=name, token_value="00000000-0000-0000-0000-000000000000", verify_ssl=str(emu.info.ca_file))
    start = time.monotonic()
    err = raises(bad.version.get)
    assert time.monotonic() - start >= AUTH_DELAY * 0.9  # PVE delays every 401
    assert (err.status_code, err.status_message, err.content, err.errors) == (401, "Unauthorized", "invalid token value!", {"errors": b""})
    assert str(err) == "401 Unauthorized: invalid token value! - {'errors': b''}"
    other = ProxmoxAPI(emu.info.endpoint, user=user, token_name="other", token_value="x", verify_ssl=str(emu.info.ca_file))
    assert raises(other.version.get).content == "no such token 'other' for user 'hatui@pve'"
    r = requests.get(emu.info.url + "/api2/json/version", verify=str(emu.info.ca_file), timeout=10)
    assert (r.status_code, r.reason, r.content, r.headers.get("Content-Type"), r.headers["Connection"]) == (401, "No ticket", b"", None, "close")


def test_ticket_auth_and_csrf(emu, ticket_px):
    ticket, csrf = ticket_px.get_tokens()
    assert re.fullmatch(r"PVE:root@pam:[0-9A-F]{8}::\S+", ticket)
    assert re.fullmatch(r"[0-9A-F]{8}:[A-Za-z0-9+/]{43}", csrf)
    assert ticket_px.version.get()["version"] == "8.4.1"
    assert ticket_px.cluster.ha.groups.post(group="lab", nodes="pve1:2,pve2:1") is None  # POST with CSRF works
    # missing / wrong CSRF token on a write
    r = requests.post(emu.info.url + "/api2/json/cluster/ha/groups", data={"group": "x1", "nodes": "pve1"}, cookies={"PVEAuthCookie": ticket}, verify=str(emu.info.ca_file), timeout=10)
    assert (r.status_code, r.reason, r.content) == (401, "Permission denied - invalid csrf token", b"")
    ticket_px._backend.auth.csrf_prevention_token = "00000000:" + "A" * 43
    try:
        err = raises(ticket_px.cluster.ha.groups.post, group="x2", nodes="pve1")
        assert (err.status_code, err.content) == (401, "Permission denied - invalid csrf token")
    finally:
        ticket_px._backend.auth.csrf_prevention_token = csrf
    # a forged ticket
    r = requests.get(emu.info.url + "/api2/json/version", cookies={"PVEAuthCookie": ticket[:-4] + "AAA="}, verify=str(emu.info.ca_file), timeout=10)
    assert (r.status_code, r.reason) == (401, "permission denied - invalid PVE ticket")
    # a valid ticket works as the password (proxmoxer's renewal)
    assert ProxmoxAPI(emu.info.endpoint, user="root@pam", password=ticket, verify_ssl=str(emu.info.ca_file)).version.get()


def test_bad_login(emu):
    with pytest.raises(AuthenticationError) as info:
        ProxmoxAPI(emu.info.endpoint, user="root@pam", password="wrong", verify_ssl=str(emu.info.ca_file))
    assert str(info.value) == f"Couldn't authenticate user: root@pam to {emu.info.url}/api2/json/access/ticket code: 401"
    r = requests.post(emu.info.url + "/api2/json/access/ticket", data={"username": "root@pam", "password": "wrong"}, verify=str(emu.info.ca_file), timeout=10)
    assert (r.status_code, r.reason, r.json()) == (401, "authentication failure", {"data": None, "message": "authentication failure\n"})
    r = requests.post(emu.info.url + "/api2/json/access/ticket", data={"username": "root@pam", "password": "x"},
                      headers={"Authorization": f"PVEAPIToken={emu.info.token_id}={emu.token_secret()}"}, verify=str(emu.info.ca_file), timeout=10)  # fmt: skip
    assert (r.status_code, r.reason) == (403, "Permission check failed (URI '/access/ticket' not available with API token, need proper ticket.")


def test_duplicate_vmid(px, study_vms):
    err = raises(px.nodes("pve2").qemu.post, vmid=101, name="again")
    assert (err.status_code, err.content, err.errors) == (500, "unable to create VM 101 - VM 101 already exists on node 'pve1'", None)
    assert str(err) == "500 Internal Server Error: unable to create VM 101 - VM 101 already exists on node 'pve1'"


def test_bad_parameters_400_with_errors(emu, px):
    err = raises(px.nodes("pve1").qemu.post, vmid=99, name="ha_node_1", foo="bar", memory="abc", net0="foo,bridge=vmbr0", scsihw="nvme", cores=0)
    assert (err.status_code, err.status_message, err.content) == (400, "Bad Request", "Parameter verification failed.")
    assert err.errors == {
        "vmid": "invalid format - value does not look like a valid VM ID\n",
        "name": "invalid format - value does not look like a valid DNS name\n",
        "foo": "property is not defined in schema and the schema does not allow additional properties",
        "memory": "invalid format - format error\nmemory.current: type check ('integer') failed - got 'abc'\n",
        "net0": "invalid format - format error\nnet0.model: value 'foo' does not have a value in the enumeration "
        "'e1000, e1000-82540em, e1000-82544gc, e1000-82545em, e1000e, i82551, i82557b, i82559er, ne2k_isa, ne2k_pci, pcnet, rtl8139, virtio, vmxnet3'\n",
        "scsihw": "value 'nvme' does not have a value in the enumeration 'lsi, lsi53c810, virtio-scsi-pci, virtio-scsi-single, megasas, pvscsi'",
        "cores": "value must have a minimum value of 1",
    }
    err = raises(px.nodes("pve1").qemu.post, name="x")
    assert err.errors == {"vmid": "property is missing and it is not optional"}
    err = raises(px.nodes("pve1").qemu.post, vmid=160, scsi31="local-lvm:1")
    assert err.errors == {"scsi31": "property is not defined in schema and the schema does not allow additional properties"}
    err = raises(px.nodes("pve1").qemu.post, vmid=160, scsi0="nosuch:1")
    assert (err.status_code, err.content) == (500, "storage 'nosuch' does not exist")
    err = raises(px.nodes("pve1").qemu.post, vmid=160, scsi0="local:1")
    assert err.errors == {"storage": "storage 'local' does not support vm images"}
    r = requests.post(emu.info.url + "/api2/json/nodes/pve1/qemu", data={"vmid": "abc"}, headers={"Authorization": f"PVEAPIToken={emu.info.token_id}={emu.token_secret()}"}, verify=str(emu.info.ca_file), timeout=10)
    assert (r.status_code, r.reason) == (400, "Parameter verification failed.")
    assert r.json() == {"data": None, "errors": {"vmid": "type check ('integer') failed - got 'abc'"}, "message": "Parameter verification failed.\n"}


def test_booleans_only_0_or_1(px, study_vms):
    for value in (True, "yes", "on", 2):
        err = raises(px.nodes("pve1").qemu(102).snapshot.post, snapname="x1", vmstate=value)
        assert err.errors == {"vmstate": f"type check ('boolean') failed - got '{value}'"}
    err = raises(px.nodes("pve1").qemu.post, vmid=161, start=True)
    assert err.errors == {"start": "type check ('boolean') failed - got 'True'"}
    assert str(err) == "400 Bad Request: Parameter verification failed. - {'start': \"type check ('boolean') failed - got 'True'\"}"
    # inside property strings PVE accepts on/off/yes/no/true/false
    cfg = px.nodes("pve1").qemu(102).config
    assert cfg.put(agent="enabled=true") is None and cfg.get()["agent"] == "enabled=true"


def test_locked_vm(px, study_vms):
    vm = px.nodes("pve2").qemu(103)
    snap = vm.snapshot.post(snapname="pre")
    assert vm.status.current.get()["lock"] == "snapshot"
    assert vm.config.get()["lock"] == "snapshot"
    start = vm.status.start.post()  # accepted: the lock check runs in the task
    err = raises(vm.config.put, cores=2)  # config updates check the lock synchronously
    assert (err.status_code, err.content) == (500, "VM is locked (snapshot)")
    err = raises(vm.config.post, cores=2)
    assert err.content == "VM is locked (snapshot)"
    assert wait(px, start)["exitstatus"] == "VM is locked (snapshot)"
    assert log_lines(px, start)[-1] == "TASK ERROR: VM is locked (snapshot)"
    assert wait(px, snap)["exitstatus"] == "OK"
    assert "lock" not in vm.status.current.get()
    # skiplock is root-only
    err = raises(vm.config.put, delete="lock", skiplock=1)
    assert err.errors == {"skiplock": "Only root may use this option."}


def test_nonexistent_vm(px):
    err = raises(px.nodes("pve1").qemu(105).config.get)
    assert (err.status_code, err.content) == (500, "Configuration file 'nodes/pve1/qemu-server/105.conf' does not exist")
    assert raises(px.nodes("pve1").qemu(105).status.current.get).content == "Configuration file 'nodes/pve1/qemu-server/105.conf' does not exist"
    # the VM exists, but on the other node
    assert raises(px.nodes("pve1").qemu(103).snapshot.get).content == "Configuration file 'nodes/pve1/qemu-server/103.conf' does not exist"
    assert wait(px, px.nodes("pve1").qemu(105).status.start.post())["exitstatus"] == "Configuration file 'nodes/pve1/qemu-server/105.conf' does not exist"
    assert wait(px, px.nodes("pve1").qemu(105).status.stop.post())["exitstatus"] == "unable to find configuration file for VM 105 on node 'pve1'"
    err = raises(px.nodes("pve1").qemu(105).status.reboot.post)
    assert err.content == "unable to find configuration file for VM 105 on node 'pve1'"


def test_offline_node_595(emu, px, study_vms):
    emu.set_offline(["pve2"])
    try:
        err = raises(px.nodes("pve2").qemu.get)
        assert (err.status_code, err.status_message, err.content, err.errors) == (595, "Errors during connection establishment, proxy handshake", "No route to host", {"errors": b""})
        assert str(err) == "595 Errors during connection establishment, proxy handshake: No route to host - {'errors': b''}"
        assert raises(px.nodes("pve2").status.get).status_code == 595
        status = {n["name"]: n["online"] for n in px.cluster.status.get()[1:]}
        assert status == {"pve1": 1, "pve2": 0}
        assert px.cluster.status.get()[0]["quorate"] == 0  # 2 nodes, one vote left
        vms = {r["vmid"]: r["status"] for r in px.cluster.resources.get(type="vm")}
        assert vms[103] == "unknown" and vms[104] == "unknown"
        assert raises(px.nodes("pve1").qemu(101).status.start.post).content == "cluster not ready - no quorum?"
    finally:
        emu.set_offline([])
    assert px.nodes("pve2").qemu.get()
    err = raises(px.nodes("pve9").qemu.get)
    assert (err.status_code, err.content) == (500, "hostname lookup 'pve9' failed - failed to get address info for: pve9: Name or service not known")


def test_unknown_path_and_body_on_get(emu, px):
    err = raises(px.nodes("pve1").qemu(101).foo.get)
    assert (err.status_code, err.content) == (501, "Method 'GET /nodes/pve1/qemu/101/foo' not implemented")
    r = requests.get(emu.info.url + "/api2/json/version", data="x=1", headers={"Authorization": f"PVEAPIToken={emu.info.token_id}={emu.token_secret()}"}, verify=str(emu.info.ca_file), timeout=10)
    assert (r.status_code, r.reason) == (501, "Unexpected content for method 'GET'")


def test_backend_failure_becomes_failed_task(emu, px, study_vms):
    faults = emu.info.state_dir / "backend-faults"
    faults.write_text("fail start 104 QEMU exited with code 1\n")
    try:
        status = wait(px, px.nodes("pve2").qemu(104).status.start.post())
        assert status["exitstatus"] == "QEMU exited with code 1"
        assert px.nodes("pve2").qemu(104).status.current.get()["status"] == "stopped"
    finally:
        faults.unlink()


def test_migrate(px, study_vms):
    err = raises(px.nodes("pve2").qemu(104).migrate.post, target="pve2")
    assert err.errors == {"target": "target is local node."}
    assert raises(px.nodes("pve2").qemu(104).migrate.post, target="pve9").content == "no such cluster node 'pve9'"
    upid = px.nodes("pve2").qemu(104).migrate.post(target="pve1")
    assert Tasks.decode_upid(upid)["type"] == "qmigrate" and wait(px, upid)["exitstatus"] == "OK"
    assert next(r for r in px.cluster.resources.get(type="vm") if r["vmid"] == 104)["node"] == "pve1"
    assert wait(px, px.nodes("pve1").qemu(104).migrate.post(target="pve2"))["exitstatus"] == "OK"


def test_ha_resources_and_status(px, ticket_px, study_vms):
    assert px.cluster.ha.resources.post(sid="vm:102", state="started", max_restart=2) is None
    err = raises(px.cluster.ha.resources.post, sid="vm:102")
    assert err.content == "resource ID 'vm:102' already defined"
    assert raises(px.cluster.ha.resources.post, sid="vm:999").content == "resource 'vm:999' does not exist in cluster"
    assert px.cluster.ha.resources.get() == [{"sid": "vm:102", "type": "vm", "state": "started", "max_restart": 2, "digest": px.cluster.ha.resources.get()[0]["digest"]}]
    deadline = time.monotonic() + 10
    while px.nodes("pve1").qemu(102).status.current.get()["status"] != "running":
        assert time.monotonic() < deadline, "HA did not start vm:102"
        time.sleep(0.1)
    status = px.cluster.ha.status.current.get()
    assert [s["id"] for s in status] == ["quorum", "master", "lrm:pve1", "lrm:pve2", "service:vm:102"]
    svc = status[-1]
    assert (svc["sid"], svc["node"], svc["crm_state"], svc["request_state"], svc["status"]) == ("vm:102", "pve1", "started", "started", "vm:102 (pve1, started)")
    assert px.nodes("pve1").qemu(102).status.current.get()["ha"] == {"managed": 1, "state": "started"}
    upid = px.nodes("pve1").qemu(102).status.stop.post()
    assert Tasks.decode_upid(upid)["type"] == "hastop" and wait(px, upid)["exitstatus"] == "OK"
    deadline = time.monotonic() + 10
    while px.nodes("pve1").qemu(102).status.current.get()["status"] != "stopped":
        assert time.monotonic() < deadline, "HA did not stop vm:102"
        time.sleep(0.1)
    assert px.cluster.ha.resources("vm:102").delete() is None
    assert raises(px.cluster.ha.resources("vm:102").delete).content == "cannot delete service 'vm:102', not HA managed!"


def test_json_body_and_state_file(emu, px, study_vms):
    r = requests.put(
        emu.info.url + "/api2/json/nodes/pve1/qemu/101/config",
        data=json.dumps({"description": "set via JSON", "onboot": False}),
        headers={"Authorization": f"PVEAPIToken={emu.info.token_id}={emu.token_secret()}", "Content-Type": "application/json"},
        verify=str(emu.info.ca_file),
        timeout=10,
    )
    assert r.status_code == 200 and r.json() == {"data": None}
    cfg = px.nodes("pve1").qemu(101).config.get()
    assert cfg["description"] == "set via JSON" and cfg["onboot"] == 0
    state = json.loads((Path(emu.info.state_dir) / "state.json").read_text())
    assert sorted(state["vms"]) == ["101", "102", "103", "104"]


def test_restart_keeps_vms_and_certificate(tmp_path):
    with EmulatorProcess(tmp_path / "pve", extra_args=["--auth-fail-delay", "0", "--time-scale", "0.2"]) as emu:
        first = emu.info
        user, _, name = first.token_id.partition("!")
        api = ProxmoxAPI(first.endpoint, user=user, token_name=name, token_value=emu.token_secret(), verify_ssl=str(first.ca_file))
        wait(api, api.nodes("pve1").qemu.post(vmid=101, name="vm01a"))
        wait(api, api.nodes("pve1").qemu(101).snapshot.post(snapname="base"))
        second = emu.restart()
        assert second.pid != first.pid and second.fingerprint == first.fingerprint
        api = ProxmoxAPI(second.endpoint, user=user, token_name=name, token_value=emu.token_secret(), verify_ssl=str(second.ca_file))
        assert [v["name"] for v in api.nodes("pve1").qemu.get()] == ["vm01a"]
        assert [s["name"] for s in api.nodes("pve1").qemu(101).snapshot.get()] == ["base", "current"]
        assert api.nodes("pve1").tasks.get(typefilter="qmcreate")[0]["status"] == "OK"
