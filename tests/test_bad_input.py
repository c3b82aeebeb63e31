"""Bad input never shows a traceback: each gives its exit code and one line naming the option or the
key path, before any command reaches a host (issue 12, point 10). No lab: nothing is ever sent."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from hatui.cli import main
from hatui.commands import export
from hatui.config import load_lab
from hatui.drill.plan import make_plan
from hatui.drill.runner import DrillRunner
from hatui.load.spec import LoadLimitError
from tests.test_lifecycle import RecordingPool

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "lab.toml"
URL = "http://127.0.0.1:9/"  # never reached: every case is refused first


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture(autouse=True)
def no_drill(monkeypatch):
    """An export that got as far as driving the drill would be a failure of these tests."""
    async def must_not_drive(*args, **kwargs):
        raise AssertionError("the drill was started")
    monkeypatch.setattr(export, "_drive", must_not_drive)


@pytest.mark.parametrize("args, message", [
    (["--host", "日本"], "--host: bad Host header '日本'"),
    (["--served-by-header", "é"], "--served-by-header: bad served-by header 'é'"),
    (["--rate", "nan"], "--rate must be > 0"),
    (["--rate=-inf"], "--rate must be > 0"),
])
def test_bad_load_options_are_one_line_exit_2(args, message, capsys):
    argv = ["load", URL, "--rate", "10", "--num-conns", "5", *args]
    assert main(argv) == 2
    assert message in error_line(capsys)


def test_load_limits_suggest_force_only_where_it_exists(capsys):
    assert main(["load", URL, "--rate", "0.5", "--num-conns", "2000"]) == 3
    assert "(use --force to run it anyway)" in error_line(capsys)


@pytest.mark.parametrize("args, message", [
    (["--rates", "nan"], "--rates: expected positive rates, found 'nan'"),
    (["--rates", "10,inf"], "--rates: expected positive rates"),
    (["--rates=-inf"], "--rates: expected positive rates"),
    (["--repeat", "1000000000"], "at most 10,000 runs and last at most 168 h"),
    (["--stack", "native", "--rates", "1000", "--repeat", "1", "--conns", "2000000"],
     "load.connections, load.rates: 2000000 connections at 1000 conn/s is beyond the load engine's limits"),
])
def test_bad_export_options_are_one_line_exit_2(args, message, tmp_path, capsys):
    assert main(["export", str(tmp_path / "out"), "--lab", str(LAB), *args]) == 2
    err = error_line(capsys)
    assert message in err and "--force" not in err
    assert not (tmp_path / "out").exists()  # refused before the report directory, the journal or a host


def bad_lab(tmp_path: Path, old: str, new: str) -> str:
    text = LAB.read_text()
    assert old in text
    path = tmp_path / "lab.toml"
    path.write_text(text.replace(old, new, 1))
    return str(path)


@pytest.mark.parametrize("old, new, key_path", [
    ('uri = "/index.html"', 'uri = "/日本.html"', "load.uri: expected ASCII"),
    ("timeout_s = 1.0\nprobe", "timeout_s = 1e9\nprobe", "load.timeout_s: expected at most 3600 s"),
    ("timeout_s = 1.0\nprobe", "timeout_s = inf\nprobe", "load.timeout_s: expected a positive number"),
    ("connections = 2000", "connections = 100000000", "load.connections: expected 1..1,000,000"),
    ("rates = [10, 20, 30, 40, 50]", "rates = [0.001]", "load.rates: 2000 connections at 0.001 conn/s"),
    ("rates = [10, 20, 30, 40, 50]", "rates = [nan]", "load.rates: expected a non-empty list of positive"),
    ('token_id = "hatui@pve!tui"', 'token_id = "hatui@pve!t"', "proxmox.token_id: expected USER@REALM!TOKENID"),
    ('nics.eth1 = { network = "replication", address = "10.251.1.11" }',
     'nics."eth1;reboot" = { network = "replication", address = "10.251.1.11" }',
     'hosts.master.nics.eth1;reboot: bad interface name "eth1;reboot"'),
    ('nics.eth1 = { network = "replication", address = "10.251.1.11" }',
     'nics.replication-link0 = { network = "replication", address = "10.251.1.11" }',
     "hosts.master.nics.replication-link0: bad interface name"),
    ('vip_interface = "eth0"', 'vip_interface = "eth0 x"', 'pairs.native.vip_interface: bad interface name "eth0 x"'),
])
@pytest.mark.parametrize("command", [["check"], ["export", "OUT"]])
def test_bad_lab_values_are_refused_by_check_and_export(old, new, key_path, command, tmp_path, capsys):
    lab = bad_lab(tmp_path, old, new)
    argv = [str(tmp_path / "out") if word == "OUT" else word for word in command]
    assert main([*argv, "--lab", lab]) == 2
    err = capsys.readouterr().err
    problem, count = err.splitlines()  # the project's config error: one line per problem, then the count
    assert key_path in problem and count.startswith("hatui: 1 problem(s)")
    assert "Traceback" not in err and "--force" not in err


def test_make_plan_refuses_a_lab_the_loader_did_not_check():
    lab = load_lab(LAB)
    lab.load.uri = "/日本"
    with pytest.raises(Exception, match="load.uri: expected ASCII"):
        make_plan(lab)


def test_a_run_refused_after_its_vm_snapshot_is_rolled_back(tmp_path):
    lab = load_lab(LAB)
    plan = make_plan(lab, stacks=["virtual"], rates=[10], repeat=1, conns=300)
    plan.snapshot_vms = True
    runner = DrillRunner(lab, plan, pool=RecordingPool(), journal_path=tmp_path / "journal.jsonl")
    calls = []

    async def steady(*args, **kwargs):
        return []

    async def snapshot(planned, pair, index):
        calls.append(("snapshot", pair.name))
        return "snap"

    async def refused_load(*args):
        raise LoadLimitError("refusing the run: too big")

    async def rollback(planned, pair, name):
        calls.append(("rollback", name))

    runner._wait_steady, runner._vm_snapshot, runner._vm_rollback = steady, snapshot, rollback
    runner._load_with_fault = refused_load
    outcome = asyncio.run(runner.run())
    assert outcome.exit_code == 3 and outcome.refused == "refusing the run: too big"
    assert calls == [("snapshot", "vm01"), ("rollback", "snap")]


def test_python_m_hatui_prints_one_line_not_a_traceback():
    result = subprocess.run([sys.executable, "-m", "hatui", "load", URL, "--rate", "10", "--num-conns", "5",
                             "--host", "日本"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["hatui: --host: bad Host header '日本': expected ASCII without spaces "
                                          "(an international name in its xn-- form)"]
