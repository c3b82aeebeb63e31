"""Proxmox that cannot hit the wrong VM (issue 14), against the emulator over HTTPS.

A lab.toml VMID that holds a VM of another name is refused by every action (CLI, Core, the drill's
stop-vm fault and snapshots) with nothing sent; `--all` asks first or needs --yes and never means
the whole cluster; --dry-run sends nothing; options go anywhere; a VM the token cannot audit is a
missing privilege, not a missing VM; snapshot names are checked; `vms list` stays aligned.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from hatui.cli import main
from hatui.config import load_lab
from hatui.errors import EXIT_REFUSED
from hatui.proxmox import (HATUI_TAG, ProxmoxParameterError, ProxmoxPermissionError, PveClient, PveSettings, VmIdentityError,
                           VmSpec, VmState)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    from hatui.lab.pve.launch import EmulatorProcess

    proc = EmulatorProcess(tmp_path_factory.mktemp("pve-safety"), extra_args=["--time-scale", "0.2", "--auth-fail-delay", "0.05"])
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def lab_file(emu, tmp_path_factory) -> Path:
    """The repository's lab.toml, its [proxmox] pointing at the emulator."""
    tmp = tmp_path_factory.mktemp("pve-safety-lab")
    text = (REPO / "lab.toml").read_text()
    for old, new in (('state_dir = "/run/hatui/local-lab"', f'state_dir = "{tmp / "state"}"'),
                     ('endpoint = "https://127.0.0.1:8006"', f'endpoint = "{emu.info.url}"'),
                     ('"{state_dir}/pve/token.secret"', f'"{emu.info.token_secret_file}"'),
                     ('"{state_dir}/pve/ca.pem"', f'"{emu.info.ca_file}"')):
        assert old in text
        text = text.replace(old, new)
    path = tmp / "lab.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def client(emu) -> PveClient:
    return PveClient(PveSettings(emu.info.url, emu.info.token_id, emu.token_secret(), ca_file=str(emu.info.ca_file)))


@pytest.fixture(scope="module")
def cluster(client, lab_file):
    """VMID 101 (lab.toml: vm01a) holds 'prod-db', running, with snapshot 'clean'; 102 is the lab's vm01b."""
    from hatui.vms import lab_vm_spec

    lab = load_lab(lab_file)
    client.create_vm(VmSpec("prod-db", 101, "pve1"))
    client.start(101)
    client.snapshot(101, "clean")
    client.create_vm(lab_vm_spec(lab, lab.hosts["vm01b"]))
    return lab


@pytest.fixture
def hatui(lab_file, capsys, monkeypatch):
    """hatui(*argv) -> (exit code, stdout, stderr) of `hatui vms --lab LAB ...`, stdin not a terminal."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    def run(*argv: str):
        code = main(["vms", "--lab", str(lab_file), *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def sent(client) -> set[str]:
    """The UPIDs of the cluster's tasks: unchanged means nothing was sent."""
    return {t["upid"] for t in client.request("GET", "cluster/tasks")}


def prod_db(client) -> tuple[str, list[str]]:
    vm = client.list_vms(vmids=[101])[0]
    return vm.status, [s.name for s in vm.snapshots]


# --- the wrong VM ------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["start"], ["stop"], ["shutdown"], ["snapshot", "s2"], ["rollback", "clean"],
                                  ["delete-snapshot", "clean"]])
@pytest.mark.parametrize("target", ["vm01a", "101"])
def test_a_vmid_holding_another_vm_is_refused_by_every_action(cluster, client, hatui, argv, target):
    before = sent(client), prod_db(client)
    code, out, err = hatui(*argv, target)
    assert code == EXIT_REFUSED, (out, err)
    assert err == ("vm01a (101): VM 101 on pve1 is named 'prod-db', lab.toml expects 'vm01a': another VM has "
                   "this VMID; refused, nothing sent to it\n")
    assert (sent(client), prod_db(client)) == before
    assert prod_db(client) == ("running", ["clean"])


def test_the_wrong_vm_is_refused_in_json_too(cluster, client, hatui):
    code, out, _ = hatui("stop", "vm01a", "vm01b", "--json")
    data = json.loads(out)
    assert code == EXIT_REFUSED and data["ok"] is False
    refused, done = data["vms"]
    assert refused["ok"] is False and refused["exit_code"] == 3 and "'prod-db'" in refused["error"]
    assert done["ok"] is True  # the right VM is still served
    assert prod_db(client)[0] == "running"


def test_core_vm_power_and_drill_snapshots_refuse_the_wrong_vm(cluster, client):
    from hatui.core import Core
    from hatui.vms import drill_rollback, drill_snapshot, vm_power

    before = sent(client), prod_db(client)
    core = Core(cluster)
    for action in ("start", "stop", "shutdown", "snapshot"):
        with pytest.raises(VmIdentityError, match=r"VM 101 on pve1 is named 'prod-db', lab.toml expects 'vm01a'") as info:
            asyncio.run(core.vm_action(core.plan_vm_action("vm01a", action)))
        assert info.value.exit_code == EXIT_REFUSED
    for action in ("stop", "start"):  # the drill's stop-vm fault and its undo
        with pytest.raises(VmIdentityError):
            asyncio.run(vm_power(cluster, "vm01a", action))
    with pytest.raises(VmIdentityError):  # checked before vm01b is touched
        asyncio.run(drill_snapshot(cluster, ["vm01b", "vm01a"], "drill1"))
    with pytest.raises(VmIdentityError):
        asyncio.run(drill_rollback(cluster, ["vm01b", "vm01a"], "clean"))
    assert (sent(client), prod_db(client)) == before
    assert client.list_vms(vmids=[102])[0].snapshots == ()


def test_create_tags_the_vms_it_makes(cluster, client):
    assert client.list_vms(vmids=[102], with_snapshots=False)[0].tags == HATUI_TAG


# --- --all, --yes, --dry-run ---------------------------------------------------------------------------


@pytest.mark.parametrize("action", [["stop"], ["shutdown"], ["rollback", "clean"], ["delete-snapshot", "clean"]])
def test_destructive_all_without_yes_off_a_terminal_refuses_and_sends_nothing(cluster, client, hatui, action):
    before = sent(client)
    code, out, err = hatui(*action, "--all")
    assert code == EXIT_REFUSED and out == ""
    assert err.startswith(f"hatui: vms {action[0]} --all would {action[0]} 4 VM(s): vm01a (101), vm01b (102), ")
    assert err.endswith("not on a terminal to ask: pass --yes (or --dry-run); nothing sent\n") and err.count("\n") == 1
    assert sent(client) == before


def test_all_answered_no_on_a_terminal_sends_nothing(cluster, client, hatui, monkeypatch):
    answers = io.StringIO("n\n")
    answers.isatty = lambda: True
    monkeypatch.setattr("sys.stdin", answers)
    before = sent(client)
    code, out, err = hatui("stop", "--all", "--json")
    assert code == EXIT_REFUSED and json.loads(out)["error"] == "vms stop --all: not confirmed; nothing sent"
    assert err.startswith("vms stop --all would stop 4 VM(s): vm01a (101), ") and err.endswith("Go on? [y/N] ")
    assert sent(client) == before


def test_all_is_never_the_whole_cluster(emu, client, monkeypatch, capsys):
    monkeypatch.chdir(emu.info.state_dir)  # no lab.toml here
    monkeypatch.setenv("HATUI_PVE_ENDPOINT", emu.info.url)
    monkeypatch.setenv("HATUI_PVE_TOKEN_ID", emu.info.token_id)
    monkeypatch.setenv("HATUI_PVE_TOKEN_SECRET_FILE", str(emu.info.token_secret_file))
    monkeypatch.setenv("HATUI_PVE_FINGERPRINT", emu.info.fingerprint)
    before = sent(client)
    for action in (["start"], ["stop", "--yes"], ["snapshot", "s3"]):
        assert main(["vms", *action, "--all"]) == 2
        err = capsys.readouterr().err
        assert "--all means the lab's VMs, never the whole cluster: name the VMs" in err and err.count("\n") == 1
    assert sent(client) == before


def test_dry_run_prints_the_requests_and_sends_nothing(cluster, client, hatui):
    before = sent(client), prod_db(client)
    code, out, err = hatui("rollback", "clean", "vm01b", "--start", "--dry-run")
    assert code == 0 and out == "vm01b (102): would send POST /api2/json/nodes/pve2/qemu/102/snapshot/clean/rollback start=1\n"
    code, out, err = hatui("stop", "vm01a", "vm01b", "--dry-run")
    assert code == EXIT_REFUSED and out == "vm01b (102): would send POST /api2/json/nodes/pve2/qemu/102/status/stop\n"
    assert err.startswith("vm01a (101): VM 101 on pve1 is named 'prod-db'")  # a dry run still names the wrong VM
    code, out, err = hatui("stop", "--all", "--dry-run")  # no --yes needed: nothing is sent
    assert code == 2 and "vm01b (102): would send POST /api2/json/nodes/pve2/qemu/102/status/stop\n" in out
    assert "vm02b (104): no VM 104 in the Proxmox cluster" in err
    code, out, _ = hatui("snapshot", "s4", "vm01b", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["vms"][0]["request"] == "POST /api2/json/nodes/pve2/qemu/102/snapshot snapname=s4"
    assert (sent(client), prod_db(client)) == before


def test_destructive_all_with_yes_runs(cluster, client, hatui, emu):
    # only vm01b is right: 101 is refused, 103/104 do not exist; vm01b is stopped
    code, out, err = hatui("stop", "--all", "--yes")
    assert code == 2 and "vm01b (102): qmstop OK" in out and "'prod-db'" in err
    assert prod_db(client)[0] == "running"


# --- options anywhere, snapshot names ------------------------------------------------------------------


def test_options_after_the_snapshot_name(cluster, client, hatui):
    assert hatui("start", "vm01b")[0] == 0
    code, out, err = hatui("snapshot", "mixed", "--vmstate", "vm01b")
    assert code == 0 and "vm01b (102): qmsnapshot OK" in out, err
    code, out, err = hatui("rollback", "mixed", "--start", "vm01b", "--json")
    assert code == 0 and json.loads(out)["vms"][0]["task"] == "qmrollback", err
    assert client.status(102)["status"] == "running"
    with pytest.raises(SystemExit) as info:  # an unknown option is still a usage error
        hatui("delete-snapshot", "mixed", "--bogus", "vm01b")
    assert info.value.code == 2


@pytest.mark.parametrize("name", ["1st", "has space", "x", "a" * 41, "semi;colon"])
def test_bad_snapshot_name_is_refused_for_snapshot(cluster, client, hatui, name):
    before = sent(client)
    code, out, err = hatui("snapshot", name, "vm01b")
    assert code == 2 and err == (f"hatui: invalid snapshot name {name!r}: a letter, then letters, digits, '-' or '_' "
                                 "(2..40 characters)\n")
    with pytest.raises(ProxmoxParameterError, match="invalid snapshot name"):
        client.snapshot(102, name)
    assert sent(client) == before


# --- a VM the token cannot audit -----------------------------------------------------------------------


def test_a_vm_the_token_cannot_audit_is_a_missing_privilege(cluster, client, hatui, emu):
    from hatui.lab.pve.auth import TOKEN_NO_ACCESS_FILE
    from hatui.vms import lab_vm_spec

    client.create_vm(lab_vm_spec(cluster, cluster.hosts["vm02a"]))  # VMID 103
    no_access = emu.info.state_dir / TOKEN_NO_ACCESS_FILE
    no_access.write_text("103\n")
    try:
        assert 103 not in {v.vmid for v in client.list_vms(with_snapshots=False)}
        with pytest.raises(ProxmoxPermissionError) as info:
            client.locate(103)
        assert str(info.value) == f"VM 103 exists but token {emu.info.token_id} cannot see it: it lacks VM.Audit on /vms/103"
        with pytest.raises(ProxmoxPermissionError) as info:
            client.request("POST", "nodes/pve1/qemu/103/status/start")
        assert str(info.value) == (f"Proxmox API refused POST /nodes/pve1/qemu/103/status/start: token {emu.info.token_id} "
                                   "lacks VM.PowerMgmt on /vms/103 (403)")
        before = sent(client)
        code, out, err = hatui("create", "vm02a")
        assert code == 2 and "lacks VM.Audit on /vms/103" in err and "created" not in out
        code, out, err = hatui("start", "vm02a")
        assert code == 2 and err == (f"vm02a (103): VM 103 exists but token {emu.info.token_id} cannot see it: "
                                     "it lacks VM.Audit on /vms/103\n")
        assert sent(client) == before
    finally:
        no_access.unlink()
    assert client.locate(103)["name"] == "vm02a"


# --- vms list ------------------------------------------------------------------------------------------


def test_list_columns_stay_aligned_with_long_names_and_locks(capsys):
    from argparse import Namespace

    from hatui.commands.vms import _list

    vms = [VmState(101, "vm01a", "pve1", "running", 3725, 0.021, 1, 268435456, 536870912, snapshots=()),
           VmState(150, "a-very-long-production-vm-name", "pve-node-long", "stopped", 0, 0.0, 2, 0, 2147483648,
                   lock="snapshot-delete", snapshots=())]

    class Client:
        def list_vms(self, with_snapshots):
            return vms

    assert _list(Client(), Namespace(json=False, no_snapshots=False)) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    for column, values in (("NODE", ("pve1", "pve-node-long")), ("STATE", ("running", "stopped [snapshot-delete]")),
                           ("SNAPSHOTS", ("-", "-"))):
        start = header.index(column)
        assert [row[start:start + len(v)] for row, v in zip(rows, values)] == list(values)
    end = header.index("MEM") + len("MEM")
    assert [row[:end].split()[-1] for row in rows] == ["256/512M", "0/2048M"]
    assert rows[0].startswith("  101  vm01a ")
