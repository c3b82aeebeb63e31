"""A run's lifecycle and the numbers' trust: plan identity on resume, unreadable journals, the drill
engine, the gates (JUnit errors, exit codes) and provenance. No lab: the cluster is never touched."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hatui.cli import main
from hatui.commands import export
from hatui.config import load_lab
from hatui.core import Core
from hatui.drill.plan import make_plan
from hatui.drill.results import aggregate
from hatui.drill.runner import DrillOutcome, DrillRunner, drill_exit_code
from hatui.errors import UsageError
from hatui.journal import Journal
from hatui.provenance import parse_host_software
from hatui.report import junit_xml, write_all
from hatui.transport import TransportError
from tests.test_journal_report import run

REPO = Path(__file__).resolve().parents[1]
LAB = str(REPO / "lab.toml")
SMALL = ["--stack", "native", "--rates", "10", "--repeat", "1"]


class RecordingPool:
    """Stands in for SshPool: records every command, answers none."""

    def __init__(self):
        self.listeners, self.sent = [], []

    async def run(self, host, command, **kw):
        self.sent.append((host, command))
        raise TransportError(host, "not connected")


def journal_of(tmp_path: Path, conns: int) -> Path:
    """A journal begun by a drill of `conns` connections per run (its first record)."""
    plan = make_plan(load_lab(LAB), stacks=["native"], rates=[10], repeat=1, conns=conns)
    path = tmp_path / "out" / "journal.jsonl"
    with Journal(path) as journal:
        journal.write("drill-started", plan=plan.info(), runs=len(plan.runs))
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_resume_with_other_conns_is_refused_before_anything_is_sent(tmp_path):
    path = journal_of(tmp_path, 300)
    plan = make_plan(load_lab(LAB), stacks=["native"], rates=[10], repeat=1, conns=600)
    pool = RecordingPool()
    runner = DrillRunner(load_lab(LAB), plan, pool=pool, journal_path=path)
    with pytest.raises(UsageError, match="connections: journal 300, now 600"):
        asyncio.run(runner.run())
    assert pool.sent == []


def test_export_into_another_plans_journal_exits_2_naming_the_differences(tmp_path, capsys, monkeypatch):
    path = journal_of(tmp_path, 300)
    before = path.read_bytes()

    async def must_not_drive(*args):
        raise AssertionError("the drill must not start")

    monkeypatch.setattr(export, "_drive", must_not_drive)
    assert main(["--lab", LAB, "export", str(path.parent), *SMALL, "--conns", "600", "--fault", "crash"]) == 2
    err = one_error_line(capsys)
    assert "connections: journal 300, now 600" in err and "fault: journal stop-heartbeat, now crash" in err
    assert path.read_bytes() == before


@pytest.mark.parametrize("make,message", [
    (lambda p: p.mkdir(parents=True), "is a directory, not a journal"),
    (lambda p: p.write_text("GET /index.html 200\n"), "is not a hatui journal"),
    (lambda p: p.write_text("[1, 2]\n"), "is not a hatui journal"),
    (lambda p: p.write_text(json.dumps({"v": 1, "kind": "drill-started", "plan": {"connections": 300}}) + "\n"),
     "written by an older hatui"),
])
def test_unusable_journal_is_one_line_exit_2(tmp_path, capsys, monkeypatch, make, message):
    out = tmp_path / "out"
    out.mkdir()
    make(out / "journal.jsonl")
    monkeypatch.setattr(export, "_drive", None)  # never reached
    assert main(["--lab", LAB, "--export", str(out), *SMALL, "--conns", "300"]) == 2
    assert message in one_error_line(capsys)


def test_httperf_engine_is_refused_for_drills(tmp_path, capsys):
    lab = tmp_path / "lab.toml"
    lab.write_text((REPO / "lab.toml").read_text().replace('engine = "builtin"', 'engine = "httperf"'))
    for argv in (["check"], ["check", "--json"], ["export", str(tmp_path / "out"), *SMALL, "--conns", "300"]):
        assert main(["--lab", str(lab), *argv]) == 2
        captured = capsys.readouterr()
        text = captured.err or captured.out
        assert "no per-connection records" in text and "Traceback" not in text
    assert not (tmp_path / "out").exists()


def test_invalid_and_aborted_runs_are_junit_errors_and_fail_the_gate(tmp_path):
    ok, invalid, aborted = run(10, 1), run(10, 2, valid=False), run(10, 3)
    aborted.status, aborted.error = "aborted", "stopped by the operator: fault sent, recovery sent; cluster left: steady"
    suite = ET.fromstring(junit_xml([ok, invalid, aborted]))
    errors = {c.get("name"): c.find("error").get("type") for c in suite.iter("testcase") if c.find("error") is not None}
    assert errors == {"native/native/rate10/rep2 failover": "invalid", "native/native/rate10/rep2 failback": "invalid",
                      "native/native/rate10/rep3 failover": "aborted", "native/native/rate10/rep3 failback": "aborted"}
    assert suite.find(".//failure") is None and suite.get("errors") == "4"
    assert drill_exit_code([ok], 1) == 0
    assert drill_exit_code([ok, invalid], 2) == 1 and drill_exit_code([ok, aborted], 2) == 1
    assert drill_exit_code([ok], 2) == 1  # stopped before the plan's end
    # Only finished runs are averaged; the aborted one is listed apart.
    assert {a.runs for a in aggregate([ok, invalid, aborted])} == {2}
    write_all(tmp_path, [ok, invalid, aborted], lab_name="t", plan_info={})
    report = (tmp_path / "report.md").read_text()
    section = report.split("## Runs not in the tables", 1)[1].split("\n## ", 1)[0]
    assert "| native/native/rate10/rep3 | aborted | stopped by the operator: fault sent" in section
    assert "rep1" not in section and "rep2" not in section


def test_export_exit_code_is_the_runners(tmp_path, monkeypatch, capsys):
    async def fake_drive(lab, plan, out, progress):
        return DrillOutcome(results=[], exit_code=1, stopped=True)

    monkeypatch.setattr(export, "_drive", fake_drive)
    assert main(["--lab", LAB, "export", str(tmp_path / "out"), *SMALL, "--conns", "300", "--quiet"]) == 1


def test_results_json_records_the_plan_and_the_environment(tmp_path, monkeypatch, capsys):
    async def fake_drive(lab, plan, out, progress):
        versions = {"master": {"heartbeat": "3.0.6", "drbd": None, "nginx": "nginx version: nginx/1.22.1"},
                    "slave": None}
        return DrillOutcome(results=[], exit_code=0, host_software=versions)

    monkeypatch.setattr(export, "_drive", fake_drive)
    main(["--lab", LAB, "export", str(tmp_path / "out"), *SMALL, "--conns", "300", "--quiet"])
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    plan, env = doc["plan"], doc["environment"]
    assert plan["lab"] == "local-lab" and len(plan["lab_sha256"]) == 64 and plan["connections"] == 300
    assert plan["engine"] == "builtin" and plan["fault_at"] == "25%" and plan["recover_at"] == "60%"
    assert plan["thresholds"]["failover"]["max_downtime_ms"] == 5000
    assert plan["pairs"]["native"]["heartbeat"]["deadtime_ms"] > 0
    assert set(env) >= {"hatui", "git_commit", "python", "packages", "kernel", "hosts"}
    assert env["packages"]["textual"] and env["kernel"] and len(env["git_commit"] or "x" * 40) == 40
    assert env["hosts"]["slave"] is None and env["hosts"]["master"]["heartbeat"] == "3.0.6"


def test_host_software_is_read_once_per_host_and_a_silent_host_is_null():
    lab = load_lab(LAB)
    core = Core(lab)
    sent = []

    async def fake_run(host, command, **kw):
        sent.append(host)
        if host == lab.servers[1].name:
            raise TransportError(host, "connection refused")

        class Done:
            stdout = "@@heartbeat\n3.0.6\n\n@@drbd\nDRBDADM_VERSION=9.2.0\n@@nginx\nnginx version: nginx/1.22.1\n"
        return Done()

    core.pool.run = fake_run
    versions = asyncio.run(core.software_versions())
    assert sorted(sent) == sorted(h.name for h in lab.servers)
    assert versions[lab.servers[0].name] == {"heartbeat": "3.0.6", "drbd": "DRBDADM_VERSION=9.2.0",
                                             "nginx": "nginx version: nginx/1.22.1"}
    assert versions[lab.servers[1].name] is None
    assert parse_host_software("@@heartbeat\n\n@@drbd\n@@nginx\nsh: nginx: not found\n") == \
        {"heartbeat": None, "drbd": None, "nginx": None}


def test_resume_runs_aborted_halted_and_failed_runs_again(tmp_path):
    lab = load_lab(LAB)
    plan = make_plan(lab, stacks=["native"], rates=[10], repeat=4, conns=300)
    path = tmp_path / "journal.jsonl"
    earlier = [run(10, 1), run(10, 2), run(10, 3), run(10, 4)]
    for result, status in zip(earlier[1:], ("aborted", "halted", "failed")):
        result.status = status
    with Journal(path) as journal:
        journal.write("drill-started", plan=plan.info(), runs=len(plan.runs))
        for result in earlier:
            journal.write("run-finished", result=result.to_dict())
    events, ran = [], []
    runner = DrillRunner(lab, plan, pool=RecordingPool(), journal_path=path, on_event=events.append)

    async def run_one(planned, index, *, first):
        ran.append(planned.run_id)
        return run(10, planned.repetition)

    runner._run_one = run_one
    outcome = asyncio.run(runner.run())
    assert ran == ["native/native/rate10/rep2", "native/native/rate10/rep3", "native/native/rate10/rep4"]
    retried = [(e.run_id, e.last_state) for e in events if e.kind == "run-retried"]
    assert retried == [("native/native/rate10/rep2", "aborted"), ("native/native/rate10/rep3", "halted"),
                       ("native/native/rate10/rep4", "failed")]
    assert outcome.exit_code == 0 and [r.status for r in outcome.results] == ["ok"] * 4
