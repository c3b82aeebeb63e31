"""The CLI's conventions: help with examples, `hatui export`, refused mode flags, completion, --json."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hatui.cli import build_parser, main
from hatui.commands import check, export
from hatui.config import load_lab
from hatui.drill.plan import make_plan
from hatui.drill.runner import DrillOutcome

REPO = Path(__file__).resolve().parents[1]
LAB = str(REPO / "lab.toml")


def all_parsers(parser: argparse.ArgumentParser, name: str = "hatui"):
    """(name, parser) for the top-level parser and every subcommand below it."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from all_parsers(sub, f"{name} {sub_name}")


def lab_with(tmp_path: Path, **replacements: str) -> str:
    """A copy of the repository's lab.toml with some lines replaced."""
    text = (REPO / "lab.toml").read_text()
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "lab.toml"
    path.write_text(text)
    return str(path)


# --- help -------------------------------------------------------------------------------------


def test_every_command_has_a_description_and_an_example():
    parsers = dict(all_parsers(build_parser()))
    assert {"hatui export", "hatui completion", "hatui vms rollback", "hatui lab fault"} <= set(parsers)
    for name, parser in parsers.items():
        assert parser.description, f"{name}: no description"
        assert re.search(rf"^Examples?:(\n  .+)*\n  .*{re.escape(name)}", parser.epilog or "", re.M), f"{name}: no example"
        assert isinstance(parser.formatter_class("x"), argparse.RawDescriptionHelpFormatter), name


def test_help_keeps_the_example_lines(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["vms", "snapshot", "--help"])
    assert exit_info.value.code == 0
    assert "Examples:\n  hatui vms snapshot clean --all\n" in capsys.readouterr().out


# --- hatui export DIR == hatui --export DIR ------------------------------------------------------

DRILL_OPTIONS = ["--stack", "native", "--rates", "10,20", "--repeat", "2", "--conns", "400", "--fault", "crash",
                 "--write-ratio", "0.1", "--quiet"]


def test_export_subcommand_parses_like_the_flag():
    parser = build_parser()
    flag = parser.parse_args(["--export", "out", *DRILL_OPTIONS])
    command = parser.parse_args(["export", "out", *DRILL_OPTIONS])
    names = ["export", "stack", "rates", "repeat", "conns", "fault", "write_ratio", "quiet", "lab"]
    assert [getattr(command, n) for n in names] == [getattr(flag, n) for n in names]
    assert command.func is export.run and export.claims(flag)


def test_export_both_spellings_run_the_same_plan(tmp_path, monkeypatch, capsys):
    plans = []

    async def fake_drive(lab, plan, out, progress):
        plans.append(plan.info())
        return DrillOutcome(results=[], exit_code=0)

    monkeypatch.setattr(export, "_drive", fake_drive)
    assert main(["--lab", LAB, "--export", str(tmp_path / "a"), *DRILL_OPTIONS]) == 0
    assert main(["export", str(tmp_path / "b"), "--lab", LAB, *DRILL_OPTIONS]) == 0
    out = capsys.readouterr().out.split()
    assert out == [str(tmp_path / "a" / "report.md"), str(tmp_path / "b" / "report.md")]
    assert plans[0] == plans[1] and plans[0]["runs"] == 4 and plans[0]["fault"] == "crash"


@pytest.mark.parametrize("argv,message", [
    (["export", "out", "--repeat", "0"], "--repeat: expected a positive number"),
    (["export", "out", "--rates", "ten"], "--rates: expected numbers"),
    (["export", "out", "--stack", "native", "--fault", "stop-vm"], "stop-vm fault only applies to the virtual"),
])
def test_export_bad_input_is_one_line(tmp_path, capsys, argv, message):
    assert main(["--lab", LAB, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


# --- mode flags next to a command ----------------------------------------------------------------


@pytest.mark.parametrize("argv,flag,where", [
    (["--export", "OUT", "check"], "--export", "`hatui check`"),
    (["--exp", "OUT", "check"], "--export", "`hatui check`"),  # argparse's abbreviations too
    (["--quiet", "export", "OUT"], "--quiet", "`hatui export`"),
    (["--stack", "native", "status"], "--stack", "`hatui status`"),
    (["--theme", "hatui-light", "vms", "list"], "--theme", "`hatui vms`"),
    (["--read-only", "completion", "bash"], "--read-only", "`hatui completion`"),
    (["--stack", "native"], "--stack", "the terminal UI"),
    (["--export", "OUT", "--theme", "hatui-light"], "--theme", "the headless drill"),
])
def test_mode_flags_where_they_would_be_ignored_are_refused(tmp_path, capsys, argv, flag, where):
    out_dir = tmp_path / "out"
    argv = [str(out_dir) if a == "OUT" else a for a in argv]
    assert main(["--lab", LAB, *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith(f"hatui: {flag} ") and where in captured.err
    assert not out_dir.exists()  # refused before anything ran


def test_lab_is_global(capsys):
    assert main(["--lab", LAB, "check"]) == 0
    assert main(["check", "--lab", LAB]) == 0
    assert main(["--lab", LAB, "completion", "bash"]) == 0


# --- completion ------------------------------------------------------------------------------------


def test_bash_completion_is_valid_and_knows_the_commands(capsys, tmp_path):
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    for word in ("check", "export", "vms", "rollback", "completion", "--write-ratio"):
        assert word in script
    if shutil.which("bash"):
        path = tmp_path / "hatui.bash"
        path.write_text(script)
        result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr


def test_zsh_completion(capsys):
    assert main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert script.startswith("#compdef hatui") and "export" in script


def test_shtab_is_imported_only_by_the_completion_command():
    code = "import sys\nfrom hatui.cli import build_parser\nbuild_parser()\nprint('shtab' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


# --- check: the plan line and --json ---------------------------------------------------------------


def test_about():
    assert [check.about(s) for s in (45, 12 * 60, 5216, 2 * 3600)] == ["45 s", "12 min", "1 h 27 min", "2 h 0 min"]


def test_check_states_the_plan(capsys):
    plan = make_plan(load_lab(LAB))
    assert main(["check", "--lab", LAB]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  plan "))
    stacks, rates = len(plan.stacks), len(plan.rates)
    assert f"{len(plan.runs)} runs ({stacks} stacks × {rates} rates × {plan.repetitions} repetitions), " \
           f"about {check.about(plan.planned_seconds)}" in line


def test_check_plan_singular_and_impossible(tmp_path, capsys):
    one = lab_with(tmp_path, **{"rates = [10, 20, 30, 40, 50]": "rates = [10]", "repetitions = 5": "repetitions = 1",
                                'stacks = ["native", "virtual"]': 'stacks = ["native"]'})
    assert main(["check", "--lab", one]) == 0
    assert "plan        1 run (1 stack × 1 rate × 1 repetition), about 3 min" in capsys.readouterr().out
    short = lab_with(tmp_path, **{"connections = 2000": "connections = 20"})
    assert main(["check", "--lab", short]) == 0  # the file is valid; the drill needs --conns
    assert "plan        none with these defaults: a run of 20 connections" in capsys.readouterr().out


def test_check_json(capsys):
    assert main(["check", "--lab", LAB, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "hatui.check/1" and data["ok"] is True
    assert data["lab"] == "local-lab" and "master" in data["hosts"] and "native" in data["pairs"]
    assert data["plan"]["runs"] == 50 and data["plan"]["planned_seconds"] > 0


def test_check_json_config_error(tmp_path, capsys):
    bad = tmp_path / "lab.toml"
    bad.write_text("[lab]\nname = 3\n")
    assert main(["check", "--lab", str(bad), "--json"]) == 2
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert captured.err == ""
    assert data["schema"] == "hatui.check/1" and data["ok"] is False and data["exit_code"] == 2
    assert any(p["path"] == "lab.name" and p["line"] == 2 for p in data["problems"])


def test_config_errors_read_the_same_from_every_command(tmp_path, capsys):
    bad = tmp_path / "lab.toml"
    bad.write_text("[lab]\nname = 3\n")
    outputs = []
    for argv in (["check"], ["status"], ["export", str(tmp_path / "out")], []):
        assert main(["--lab", str(bad), *argv]) == 2
        outputs.append(capsys.readouterr().err)
    assert len(set(outputs)) == 1
    assert outputs[0].endswith(f"hatui: {outputs[0].count(chr(10)) - 1} problem(s) in {bad}\n")


# --- vms --json (against the Proxmox emulator) --------------------------------------------------------


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    from hatui.lab.pve.launch import EmulatorProcess

    proc = EmulatorProcess(tmp_path_factory.mktemp("pve-cli"), extra_args=["--time-scale", "0.2"])
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def vms(emu, monkeypatch, tmp_path, capsys):
    """vms(*argv) -> (exit code, stdout, stderr), connected through HATUI_PVE_* and no lab file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HATUI_PVE_ENDPOINT", emu.info.url)
    monkeypatch.setenv("HATUI_PVE_TOKEN_ID", emu.info.token_id)
    monkeypatch.setenv("HATUI_PVE_TOKEN_SECRET_FILE", str(emu.info.token_secret_file))
    monkeypatch.setenv("HATUI_PVE_FINGERPRINT", emu.info.fingerprint)

    def run(*argv: str):
        code = main(["vms", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_vms_json_on_every_action(vms):
    def ok(*argv: str) -> dict:
        code, out, err = vms(*argv, "--json")
        data = json.loads(out)
        assert code == 0 and data["schema"] == "hatui.vms/1" and data["ok"] is True, (out, err)
        return data

    created = ok("create", "--vmid", "301", "--name", "cli1", "--node", "pve1")
    assert created["action"] == "create" and created["vms"][0]["result"] == "created"
    assert ok("create", "--vmid", "301", "--name", "cli1", "--node", "pve1")["vms"][0]["result"] == "exists"
    started = ok("start", "cli1")["vms"][0]
    assert started["vmid"] == 301 and started["task"] == "qmstart" and started["exitstatus"] == "OK"
    assert ok("start", "301")["vms"][0]["result"] == "already running"
    assert ok("snapshot", "s1", "cli1")["vms"][0]["task"] == "qmsnapshot"
    listed = {v["vmid"]: v for v in ok("list")["vms"]}
    assert [s["name"] for s in listed[301]["snapshots"]] == ["s1"]
    assert ok("rollback", "s1", "cli1")["vms"][0]["ok"] is True
    assert ok("delete-snapshot", "s1", "cli1")["action"] == "delete-snapshot"
    assert ok("shutdown", "cli1")["vms"][0]["task"] == "qmshutdown"
    assert ok("stop", "cli1")["vms"][0]["ok"] is True


def test_vms_json_errors(vms):
    code, out, err = vms("start", "--json")  # usage: no VMs named
    data = json.loads(out)
    assert code == 2 and data == {"schema": "hatui.vms/1", "ok": False, "exit_code": 2,
                                  "error": "vms start: name the VMs (VMID or name) or pass --all"}
    code, out, err = vms("rollback", "nosuch", "999", "--json")
    data = json.loads(out)
    assert code == 2 and data["ok"] is False and "999" in data["error"]


def test_vms_human_output_is_unchanged(vms):
    code, out, _ = vms("create", "--vmid", "302", "--name", "cli2", "--node", "pve2")
    assert code == 0 and re.fullmatch(r"cli2 \(302\) on pve2: created \(1 core, 512 MB, disks 50G\+10G, "
                                      r"NICs vmbr0, vmbr1\) in \d+\.\ds\n", out), out
    code, out, _ = vms("start", "302")
    assert code == 0 and re.fullmatch(r"cli2 \(302\) on pve2: qmstart OK \(\d+\.\ds\)\n", out), out


# --- end to end ------------------------------------------------------------------------------------


def hatui(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hatui", *argv], capture_output=True, text=True, timeout=60, cwd=REPO)


def test_end_to_end_refusal_and_json():
    refused = hatui("--export", "/nonexistent/out", "check")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("hatui: --export is a top-level option") and "`hatui check`" in refused.stderr
    checked = hatui("check", "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout)["schema"] == "hatui.check/1"
