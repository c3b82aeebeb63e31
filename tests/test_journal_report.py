"""Journal durability and resume, aggregation, and the export files."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

from hatui.config import parse_lab
from hatui.drill.plan import RunKey
from hatui.drill.results import Mark, PhaseResult, RunResult, aggregate, check_thresholds
from hatui.journal import Journal, finished_runs, read_journal
from hatui.report import write_all
from tests.test_config import LAB_TEXT


def phase(name, requests, success, downtime):
    return PhaseResult(name, 0.0, 10.0, requests, success, success, {"connrefused": requests - success},
                       success / requests * 100, downtime, 10.0)


def run(rate, rep, down=600.0, valid=True):
    return RunResult(RunKey("native", "native", rate, rep), 300, "stop-heartbeat", 0.0,
                     "ok", {"failover": phase("failover", 150, 147, down), "failback": phase("failback", 150, 145, 500.0)},
                     None, [Mark("fault-sent", 3.0, 0.0), Mark("recovery-sent", 9.0, 0.0)],
                     [{"t": 0, "attempted": rate, "success": rate, "errors": {}}], valid=valid,
                     invalid_reasons=[] if valid else ["achieved 9.0 conn/s"])


def test_journal_roundtrip_and_torn_tail(tmp_path):
    path = tmp_path / "journal.jsonl"
    with Journal(path) as j:
        j.write("command", host="master", command="true", exit_status=0)
        j.write("run-finished", result=run(10, 1).to_dict())
    with open(path, "a") as f:
        f.write('{"kind": "run-finished", "result": {"run_id": "torn')  # killed mid-line
    with Journal(path) as j:  # a resumed drill appends after the torn line
        j.write("run-finished", result=run(10, 2).to_dict())
    assert set(finished_runs(path)) == {"native/native/rate10/rep1", "native/native/rate10/rep2"}
    assert [e["kind"] for e in read_journal(path)] == ["command", "run-finished", "run-finished"]
    assert RunResult.from_dict(finished_runs(path)["native/native/rate10/rep1"]).phases["failover"].downtime_ms == 600.0


def test_sigkill_loses_no_written_line(tmp_path):
    path = tmp_path / "j.jsonl"
    code = (f"from hatui.journal import Journal\nimport os, signal\nj = Journal({str(path)!r})\n"
            "for i in range(50): j.write('run-finished', result={'run_id': f'r{i}'})\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert proc.returncode == -9
    assert len(finished_runs(path)) == 50


def test_aggregate_leaves_invalid_runs_out_of_means():
    aggs = aggregate([run(10, 1, 600), run(10, 2, 800), run(10, 3, 5000, valid=False)])
    fo = next(a for a in aggs if a.phase == "failover")
    assert (fo.runs, fo.valid_runs, fo.downtime_ms.n, fo.downtime_ms.mean, fo.downtime_ms.max) == (3, 2, 2, 700.0, 800.0)
    assert round(fo.downtime_ms.stddev, 3) == 141.421


def test_thresholds_mark_phases():
    lab = parse_lab(LAB_TEXT.replace("max_downtime_ms = 5000\nmin_availability_pct = 80.0\n\n[thresholds.failback]",
                                     "max_downtime_ms = 100\nmin_availability_pct = 99.5\n\n[thresholds.failback]"))
    r = run(10, 1, 600)
    check_thresholds(r, lab.thresholds)
    assert r.phases["failover"].thresholds_broken == ["downtime 600 ms > 100 ms", "availability 98.00 % < 99.5 %"]
    assert r.phases["failback"].thresholds_broken == [] and not r.passed


def test_export_files_parse(tmp_path):
    results = [run(10, 1), run(10, 2, 700), run(20, 1)]
    check_thresholds(results[2], parse_lab(LAB_TEXT.replace("max_downtime_ms = 5000", "max_downtime_ms = 1", 1)).thresholds)
    write_all(tmp_path, results, lab_name="local-lab", plan_info={"stacks": ["native"], "rates": [10, 20],
              "repetitions": 2, "connections": 300, "fault": "stop-heartbeat"})
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["schema"] == "hatui.results/1" and len(doc["runs"]) == 3 and doc["aggregates"]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "runs.csv").read_text())))
    assert len(rows) == 6 and rows[0]["phase"] == "failover" and rows[0]["requests"] == "150"
    assert list(csv.DictReader(io.StringIO((tmp_path / "per-second.csv").read_text())))[0]["attempted"] == "10"
    suite = ET.fromstring((tmp_path / "junit.xml").read_text())
    assert (suite.get("tests"), suite.get("failures")) == ("6", "1")
    report = (tmp_path / "report.md").read_text()
    assert "| 10 | failover | 2 |" in report and "## Methods" in report
    charts = (tmp_path / "charts.txt").read_text()
    assert "Availability" in charts and "\x1b" not in charts
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
