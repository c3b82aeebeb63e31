"""hatui's Proxmox client (hatui.proxmox) against the emulator over HTTPS."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading

import pytest

from hatui.errors import EXIT_REFUSED, HatuiError
from hatui.lab.pve.launch import EmulatorProcess
from hatui.proxmox import (
    ProxmoxAuthError,
    ProxmoxConfigError,
    ProxmoxConnectionError,
    ProxmoxError,
    ProxmoxExistsError,
    ProxmoxLockedError,
    ProxmoxNodeUnreachable,
    ProxmoxNotFoundError,
    ProxmoxParameterError,
    ProxmoxTaskError,
    ProxmoxTaskLockedError,
    ProxmoxTLSError,
    PveClient,
    PveSettings,
    VmSpec,
    VmSpecMismatch,
    load_token_secret,
    normalize_fingerprint,
    settings_from_config,
)

STUDY = [VmSpec("vm01a", 101, "pve1"), VmSpec("vm01b", 102, "pve1"), VmSpec("vm02a", 103, "pve2"), VmSpec("vm02b", 104, "pve2")]


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    proc = EmulatorProcess(tmp_path_factory.mktemp("pve-client"), extra_args=["--auth-fail-delay", "0.05", "--time-scale", "0.5", "--ha-interval", "0.2"])
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def settings(emu, **kw) -> PveSettings:
    base = {"token_secret": emu.token_secret(), "ca_file": str(emu.info.ca_file)}
    base.update(kw)
    return PveSettings(emu.info.url, emu.info.token_id, **base)


@pytest.fixture(scope="module")
def client(emu) -> PveClient:
    return PveClient(settings(emu))


@pytest.fixture(scope="module")
def study(client):
    return [client.create_vm(spec) for spec in STUDY]


def assert_clean(exc: BaseException, emu) -> None:
    """One line, no secret, a HatuiError."""
    text = str(exc)
    assert isinstance(exc, HatuiError)
    assert "\n" not in text and "Traceback" not in text
    assert emu.token_secret() not in text


# --- TLS ------------------------------------------------------------------------------------------


def test_tls_verified_with_ca_file(emu):
    assert PveClient(settings(emu)).version()["version"] == "8.4.1"


@pytest.mark.parametrize("form", ["as-is", "lower-no-colons", "sha256-prefix"])
def test_tls_verified_with_pinned_fingerprint(emu, form):
    fp = emu.info.fingerprint
    value = {"as-is": fp, "lower-no-colons": fp.replace(":", "").lower(), "sha256-prefix": "sha256:" + fp}[form]
    c = PveClient(settings(emu, ca_file=None, fingerprint=value))
    assert c.fingerprint == fp
    assert c.version()["release"] == "8.4"


def test_wrong_fingerprint_is_refused_before_any_request(emu):
    log = emu.info.state_dir / "emulator.log"
    before = log.read_text().count("GET /api2/json/version")
    wrong = "AB:" * 31 + "CD"
    c = PveClient(settings(emu, ca_file=None, fingerprint=wrong))
    with pytest.raises(ProxmoxTLSError) as info:
        c.version()
    assert str(info.value) == (
        f"TLS verification of the Proxmox API at {emu.info.url} failed: certificate fingerprint mismatch: pinned {wrong}, server presented {emu.info.fingerprint}"
    )
    assert_clean(info.value, emu)
    assert log.read_text().count("GET /api2/json/version") == before  # the token never left


def test_fingerprint_and_ca_together(emu):
    assert PveClient(settings(emu, fingerprint=emu.info.fingerprint)).version()
    with pytest.raises(ProxmoxTLSError, match="fingerprint mismatch"):
        PveClient(settings(emu, fingerprint="00" * 32)).version()


def test_self_signed_without_ca_or_pin_is_refused(emu):
    with pytest.raises(ProxmoxTLSError) as info:
        PveClient(settings(emu, ca_file=None)).version()
    assert "certificate verify failed" in str(info.value) and "pin the certificate fingerprint" in str(info.value)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verify_tls_false_warns_every_time(emu):
    seen: list[str] = []
    for _ in range(2):
        c = PveClient(settings(emu, ca_file=None, verify_tls=False), warn=seen.append)
        assert c.version()
    assert len(seen) == 2 and all("DISABLED" in w and "verify_tls = false" in w for w in seen)


def test_verify_tls_false_default_warning_goes_to_stderr(emu, capsys):
    PveClient(settings(emu, verify_tls=False))
    err = capsys.readouterr().err
    assert "WARNING" in err and "DISABLED" in err and emu.token_secret() not in err


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"fingerprint": "12:34"}, "SHA-256 digest"),
        ({"ca_file": "/nonexistent/ca.pem"}, "CA file does not exist"),
        ({"endpoint": "http://127.0.0.1:8006"}, "must use https"),
        ({"token_id": "hatui@pve"}, "user@realm!tokenname"),
        ({"token_secret": ""}, "secret is empty"),
    ],
)
def test_bad_settings(emu, kw, match):
    s = settings(emu)
    values = {"endpoint": s.endpoint, "token_id": s.token_id, "token_secret": s.token_secret, "ca_file": s.ca_file}
    values.update(kw)
    with pytest.raises(ProxmoxConfigError, match=match):
        PveClient(PveSettings(**values))


def test_normalize_fingerprint():
    assert normalize_fingerprint("ab" * 32) == ":".join(["AB"] * 32)
    with pytest.raises(ProxmoxConfigError):
        normalize_fingerprint("zz" * 32)


# --- secrets ---------------------------------------------------------------------------------------


def test_secret_from_env_or_file(tmp_path, monkeypatch, emu):
    monkeypatch.setenv("HATUI_TEST_SECRET", " s3cret \n")
    assert load_token_secret(env="HATUI_TEST_SECRET") == "s3cret"
    path = tmp_path / "secret"
    path.write_text("from-file\n")
    path.chmod(0o600)
    assert load_token_secret(env="HATUI_TEST_SECRET", file=path) == "from-file"
    monkeypatch.delenv("HATUI_TEST_SECRET")
    with pytest.raises(ProxmoxConfigError, match="export HATUI_TEST_SECRET"):
        load_token_secret(env="HATUI_TEST_SECRET")
    with pytest.raises(ProxmoxConfigError, match="cannot read"):
        load_token_secret(file=tmp_path / "missing")
    s = PveSettings.load(emu.info.url, emu.info.token_id, secret_file=emu.info.token_secret_file, ca_file=str(emu.info.ca_file))
    assert emu.token_secret() not in repr(s) and emu.token_secret() not in repr(PveClient(s))
    assert PveClient(s).version()


def test_settings_from_lab_config_shape(emu):
    class Px:  # the shape of hatui.config.ProxmoxConfig
        endpoint = emu.info.url
        token_id = emu.info.token_id
        token_secret_env = None
        token_secret_file = emu.info.token_secret_file
        verify_tls = True
        ca_file = emu.info.ca_file
        fingerprint = emu.info.fingerprint
        timeout_s = 7.0

    s = settings_from_config(Px())
    assert (s.timeout, s.fingerprint, s.token_secret) == (7.0, emu.info.fingerprint, emu.token_secret())
    assert PveClient(s).version()


# --- create (idempotent), power, snapshots ----------------------------------------------------------


def test_create_study_vms_is_idempotent(client, study, emu):
    assert [r.created for r in study] == [True] * 4
    assert all(r.task and r.task.type == "qmcreate" and r.task.exitstatus == "OK" for r in study)
    tasks_before = len(client.request("GET", "nodes/pve1/tasks", limit=0)) + len(client.request("GET", "nodes/pve2/tasks", limit=0))
    again = [client.create_vm(spec) for spec in STUDY]
    assert [(r.vmid, r.node, r.created, r.task) for r in again] == [(s.vmid, s.node, False, None) for s in STUDY]
    tasks_after = len(client.request("GET", "nodes/pve1/tasks", limit=0)) + len(client.request("GET", "nodes/pve2/tasks", limit=0))
    assert tasks_after == tasks_before
    cfg = client.request("GET", "nodes/pve2/qemu/103/config")
    assert (cfg["cores"], cfg["memory"], cfg["scsi0"].endswith("size=50G"), cfg["scsi1"].endswith("size=10G")) == (1, "512", True, True)
    assert re.search(r"bridge=vmbr0", cfg["net0"]) and re.search(r"bridge=vmbr1", cfg["net1"])


def test_mismatched_spec_is_reported_never_changed(client, study, emu):
    before = client.request("GET", "nodes/pve1/qemu/101/config")
    bad = VmSpec("vm01a", 101, "pve1", cores=2, memory_mb=1024, disks_gb=[50], nics=["vmbr0", "vmbr9"])
    with pytest.raises(VmSpecMismatch) as info:
        client.create_vm(bad)
    assert info.value.exit_code == EXIT_REFUSED
    assert info.value.differences == [
        "cores: 1 on Proxmox, 2 in the spec",
        "memory: 512 MiB on Proxmox, 1024 MiB in the spec",
        "disks: scsi0=50G, scsi1=10G on Proxmox, 50G in the spec",
        "nics: bridges vmbr0, vmbr1 on Proxmox, vmbr0, vmbr9 in the spec",
    ]
    assert str(info.value).startswith("VM 101 exists on pve1 but differs from the spec (cores: 1 on Proxmox, 2 in the spec;")
    assert_clean(info.value, emu)
    with pytest.raises(VmSpecMismatch, match=r"VM 'vm01a' already exists as VMID 101 on pve1 \(the spec wants VMID 110\)"):
        client.create_vm(VmSpec("vm01a", 110, "pve1"))
    with pytest.raises(VmSpecMismatch, match=r"name: 'vm01a' on Proxmox, 'other' in the spec"):
        client.create_vm(VmSpec("other", 101, "pve1"))
    after = client.request("GET", "nodes/pve1/qemu/101/config")
    assert after == before


def test_start_snapshot_rollback_delete(client, study):
    seen = []
    result = client.start("vm01a", progress=seen.append)
    assert (result.type, result.exitstatus, result.node) == ("qmstart", "OK", "pve1")
    assert seen and seen[-1].status == "stopped" and seen[-1].exitstatus == "OK"
    assert client.snapshot(101, "base", description="clean").type == "qmsnapshot"
    assert client.snapshot(101, "live", vmstate=True).exitstatus == "OK"
    vms = {v.vmid: v for v in client.list_vms()}
    assert sorted(vms) == [101, 102, 103, 104]
    v = vms[101]
    assert (v.name, v.node, v.status, v.running, v.cpus, v.maxmem, v.parent) == ("vm01a", "pve1", "running", True, 1, 512 * 1048576, "live")
    assert [(s.name, s.parent, s.vmstate, s.description) for s in v.snapshots] == [("base", None, False, "clean"), ("live", "base", True, "")]
    assert vms[103].snapshots == () and vms[103].status == "stopped"

    assert client.rollback(101, "base").type == "qmrollback"
    st = client.status(101)
    assert st["status"] == "stopped" and st["node"] == "pve1"
    assert client.rollback("vm01a", "live").exitstatus == "OK"
    assert client.status(101)["status"] == "running"  # a RAM snapshot resumes the VM
    assert client.delete_snapshot(101, "base").type == "qmdelsnapshot"
    assert [s.name for s in client.list_vms(vmids=[101])[0].snapshots] == ["live"]
    assert client.shutdown(101).type == "qmshutdown"
    assert client.stop(101).exitstatus == "OK"
    assert client.status(101)["status"] == "stopped"


def test_task_failure_carries_reason_and_log(client, study, emu):
    with pytest.raises(ProxmoxTaskError) as info:
        client.rollback(102, "nope")
    e = info.value
    assert str(e) == "Proxmox task qmrollback for VM 102 on pve1 failed: snapshot 'nope' does not exist"
    assert e.exitstatus == "snapshot 'nope' does not exist" and e.log_tail[-1] == "TASK ERROR: snapshot 'nope' does not exist"
    assert re.match(r"UPID:pve1:", e.upid)
    assert_clean(e, emu)


def test_locked_vm_errors(client, study, emu):
    upid = client.snapshot(104, "busy", wait=False)
    with pytest.raises(ProxmoxTaskLockedError) as info:
        client.start(104)
    assert str(info.value) == "Proxmox task qmstart for VM 104 on pve2 failed: VM is locked (snapshot)"
    assert isinstance(info.value, ProxmoxLockedError)
    with pytest.raises(ProxmoxLockedError) as sync:
        client.request("PUT", "nodes/pve2/qemu/104/config", cores=2)
    assert str(sync.value) == "Proxmox API: PUT /nodes/pve2/qemu/104/config: VM is locked (snapshot)"
    assert (sync.value.status, sync.value.reason) == (500, "VM is locked (snapshot)")
    assert client.wait_task(upid).exitstatus == "OK"
    assert_clean(info.value, emu)


def test_api_errors_become_one_line_hatui_errors(client, study, emu):
    with pytest.raises(ProxmoxExistsError) as dup:
        client.request("POST", "nodes/pve2/qemu", vmid=101, name="dup")
    assert str(dup.value) == "Proxmox API: POST /nodes/pve2/qemu: unable to create VM 101 - VM 101 already exists on node 'pve1'"
    with pytest.raises(ProxmoxParameterError) as bad:
        client.request("POST", "nodes/pve1/qemu", vmid=99, start=True)
    assert str(bad.value) == (
        "Proxmox API rejected POST /nodes/pve1/qemu: 400 Parameter verification failed. "
        "(start: type check ('boolean') failed - got 'True'; vmid: invalid format - value does not look like a valid VM ID)"
    )
    assert bad.value.errors == {"start": "type check ('boolean') failed - got 'True'", "vmid": "invalid format - value does not look like a valid VM ID\n"}
    with pytest.raises(ProxmoxNotFoundError) as missing:
        client.request("GET", "nodes/pve1/qemu/105/config")
    assert str(missing.value) == "Proxmox API: GET /nodes/pve1/qemu/105/config: Configuration file 'nodes/pve1/qemu-server/105.conf' does not exist"
    with pytest.raises(ProxmoxNotFoundError, match="no VM 105 in the Proxmox cluster"):
        client.start(105)
    with pytest.raises(ProxmoxParameterError, match="invalid snapshot name"):
        client.rollback(101, "../x")
    for e in (dup.value, bad.value, missing.value):
        assert_clean(e, emu)


def test_wrong_token(emu):
    c = PveClient(settings(emu, token_secret="00000000-0000-0000-0000-000000000000"))
    with pytest.raises(ProxmoxAuthError) as info:
        c.version()
    assert str(info.value) == f"Proxmox API at {emu.info.url} rejected token hatui@pve!tui: 401 invalid token value!"
    c = PveClient(PveSettings(emu.info.url, "hatui@pve!other", "x", ca_file=str(emu.info.ca_file)))
    with pytest.raises(ProxmoxAuthError, match=r"401 no such token 'other' for user 'hatui@pve'"):
        c.version()


def test_unreachable_node_595(emu, client, study):
    emu.set_offline(["pve2"])
    try:
        with pytest.raises(ProxmoxNodeUnreachable) as info:
            client.request("GET", "nodes/pve2/qemu")
        assert str(info.value) == "Proxmox node 'pve2' is unreachable (595 No route to host) [GET /nodes/pve2/qemu]"
        vms = {v.vmid: v for v in client.list_vms()}
        assert vms[103].status == "unknown" and vms[103].snapshots is None
        assert "595 No route to host" in vms[103].snapshot_error
        assert vms[101].snapshot_error is None
        assert_clean(info.value, emu)
    finally:
        emu.set_offline([])


def test_connection_refused(emu):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = PveClient(PveSettings(f"https://127.0.0.1:{port}", emu.info.token_id, "x", ca_file=str(emu.info.ca_file), timeout=3))
    with pytest.raises(ProxmoxConnectionError) as info:
        c.version()
    assert str(info.value) == f"cannot connect to the Proxmox API at https://127.0.0.1:{port}: Connection refused"


def test_ha_managed_start_waits_for_the_vm(client, study):
    client.request("POST", "cluster/ha/resources", sid="vm:103", state="stopped")
    try:
        result = client.start(103, timeout=20)
        assert result.type == "hastart"
        assert client.status(103)["status"] == "running"
        assert client.stop(103, timeout=20).type == "hastop"
        assert client.status(103)["status"] == "stopped"
    finally:
        client.request("DELETE", "cluster/ha/resources/vm:103")


# --- threads ------------------------------------------------------------------------------------


def test_one_proxmoxapi_per_thread(client):
    apis = []
    t = threading.Thread(target=lambda: apis.append(client.api()))
    t.start()
    t.join(5)
    assert apis and apis[0] is not client.api() and client.api() is client.api()


def test_client_module_is_core():
    code = "import sys, hatui.proxmox, hatui.lab.pve.launch, hatui.lab.pve.api; print('textual' in sys.modules, 'proxmoxer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**os.environ})
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_vms_command(emu, study, capsys, monkeypatch):
    import argparse

    from hatui.commands import vms

    monkeypatch.setenv("HATUI_PVE_ENDPOINT", emu.info.url)
    monkeypatch.setenv("HATUI_PVE_TOKEN_ID", emu.info.token_id)
    monkeypatch.setenv("HATUI_PVE_TOKEN_SECRET_FILE", str(emu.info.token_secret_file))
    monkeypatch.setenv("HATUI_PVE_FINGERPRINT", emu.info.fingerprint)
    parser = argparse.ArgumentParser(prog="hatui")
    vms.register(parser.add_subparsers(dest="command"))

    def run(*argv: str) -> str:
        args = parser.parse_args(["vms", *argv])
        assert args.func(args) == 0
        return capsys.readouterr().out

    out = run("list")
    assert re.search(r"^\s+101  vm01a\s+pve1\s+stopped", out, re.M) and "vm02b" in out
    assert "already exists, matches the spec" in run("create", "--vmid", "102", "--name", "vm01b", "--node", "pve1")
    assert re.search(r"vm01b \(102\) on pve1: qmsnapshot OK", run("snapshot", "cli", "vm01b"))
    assert "qmdelsnapshot OK" in run("delete-snapshot", "cli", "102")
    with pytest.raises(HatuiError, match="name the VMs"):
        run("start")
    assert '"vmid": 104' in run("list", "--json", "--no-snapshots")
