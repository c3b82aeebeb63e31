"""Report hygiene: `hatui report DIR` rewrites an export's files byte for byte from its journal alone;
junit.xml has the shape CI tools validate against; a refused export says so; runs.csv speaks
results.json's words. No lab: the drill is faked by writing its journal the way the runner does."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hatui.cli import main
from hatui.commands import export
from hatui.drill.runner import DrillOutcome, drill_exit_code
from hatui.errors import EXIT_REFUSED
from hatui.journal import Journal
from hatui.load.records import ERROR_CLASSES
from hatui.report import REPORT_FILES, RUNS_CSV_COLUMNS
from tests.test_journal_report import run

REPO = Path(__file__).resolve().parents[1]
LAB = str(REPO / "lab.toml")
PLAN = ["--stack", "native", "--rates", "10,20", "--repeat", "2", "--conns", "300", "--quiet"]
REFUSAL = "preflight refused native/native/rate10/rep1: heartbeat is stopped on slave"


def drill_results():
    """Runs of every kind a report shows: within thresholds, over one, invalid, aborted, with writes."""
    ok, over, invalid, aborted = run(10, 1), run(10, 2, 700), run(20, 1, valid=False), run(20, 2)
    for r in (ok, over, invalid, aborted):
        r.started_wall = 1_700_000_000.0 + 100 * r.repetition + r.rate
    over.phases["failover"].thresholds_broken = ["downtime 700 ms > 500 ms"]
    aborted.status, aborted.error = "aborted", "stopped by the operator: fault sent, recovery sent; cluster left: steady"
    ok.writes_attempted, ok.writes_acked, ok.lost_writes, ok.writes_detail = 40, 40, 0, "40 of 40 read back"
    return [ok, over, invalid, aborted]


def fake_drive(results, refused=None):
    """Stands in for export._drive: journals a drill the way DrillRunner.run does, sends nothing."""
    async def drive(lab, plan, out, progress):
        with Journal(out / "journal.jsonl") as journal:
            journal.write("drill-started", plan=plan.info(), runs=len(plan.runs))
            for result in results:
                journal.write("run-started", run_id=result.run_id, pair=result.pair, fault=result.fault,
                              fault_target="master")
                journal.write("run-finished", state="finished" if result.status == "ok" else result.status,
                              result=result.to_dict())
            if refused:
                journal.write("drill-refused", run_id=plan.runs[0].run_id, reason=refused)
            code = EXIT_REFUSED if refused else drill_exit_code(results, len(plan.runs))
            journal.write("drill-finished", exit_code=code, halted=None, refused=refused, stopped=False)
        return DrillOutcome(results, code, refused=refused, host_software={"master": None, "slave": None})
    return drive


def exported(tmp_path, monkeypatch, results, refused=None) -> tuple[Path, int]:
    monkeypatch.setattr(export, "_drive", fake_drive(results, refused))
    out = tmp_path / "out"
    code = main(["--lab", LAB, "export", str(out), *PLAN])
    return out, code


def report_bytes(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in REPORT_FILES}


def in_time_zone(monkeypatch, zone: str) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()


@pytest.fixture(autouse=True)
def restore_time_zone():
    yield
    time.tzset()  # after monkeypatch has put TZ back


# --- 1. hatui report DIR ------------------------------------------------------------------------


@pytest.mark.parametrize("refused", [None, REFUSAL])
def test_report_rewrites_every_file_byte_for_byte_from_the_journal(tmp_path, monkeypatch, capsys, refused):
    in_time_zone(monkeypatch, "UTC")
    results = [] if refused else drill_results()
    out, code = exported(tmp_path, monkeypatch, results, refused)
    assert code == (EXIT_REFUSED if refused else 1)
    first = report_bytes(out)
    for name in REPORT_FILES:
        (out / name).unlink()
    # Another day, another time zone, no lab.toml: the journal alone decides every byte.
    in_time_zone(monkeypatch, "Asia/Kolkata")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["--lab", str(tmp_path / "no-such-lab.toml"), "report", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.md")
    again = report_bytes(out)
    for name in REPORT_FILES:
        assert again[name] == first[name], name
    assert b"Written " in first["report.md"] and b"hostname=" in first["junit.xml"]


def test_report_of_a_journal_without_its_reports_entry_still_writes_them(tmp_path, monkeypatch):
    out, _ = exported(tmp_path, monkeypatch, drill_results())
    journal = out / "journal.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(line for line in lines if '"reports-written"' not in line) + "\n")
    (out / "results.json").unlink()
    assert main(["report", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["runs"]) == 4 and doc["environment"] is None and doc["written_at"]


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "journal.jsonl is missing or empty"),
    (lambda d: d.mkdir(), "journal.jsonl is missing or empty"),
    (lambda d: (d.mkdir(), (d / "journal.jsonl").write_text("")), "journal.jsonl is missing or empty"),
    (lambda d: (d.mkdir(), (d / "journal.jsonl").write_text("GET / 200\n")), "is not a hatui journal"),
    (lambda d: (d.mkdir(), (d / "journal.jsonl").write_text('{"kind": "command"}\n')), "does not record its plan"),
    (lambda d: (d / "journal.jsonl").mkdir(parents=True), "is a directory, not a journal"),
])
def test_report_of_a_bad_directory_is_one_line_exit_2(tmp_path, capsys, make, message):
    directory = tmp_path / "out"
    make(directory)
    assert main(["report", str(directory)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err, err
    assert not (directory / "report.md").exists()


# --- 2. junit.xml, a refused export, runs.csv ---------------------------------------------------


def check_junit_shape(text: str) -> ET.Element:
    """The rules of the common JUnit XSD (Ant/Jenkins junit-10.xsd) that CI tools validate against:
    testsuites > testsuite(name, tests, failures, errors, skipped, time, timestamp, hostname)
    > properties > property(name, value), testcase(classname, name, time) > failure|error(message, type);
    counts that add up; times as seconds with at most 3 decimals; timestamp ISO 8601 without zone."""
    seconds = r"^\d+(\.\d{1,3})?$"
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    suites = list(root)
    assert suites and all(s.tag == "testsuite" for s in suites)
    for suite in suites:
        for name in ("name", "tests", "failures", "errors", "skipped", "time", "timestamp", "hostname"):
            assert suite.get(name), f"testsuite without {name}"
        assert re.match(seconds, suite.get("time"))
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp"))
        children = [c.tag for c in suite]
        assert children[0] == "properties" and set(children[1:]) <= {"testcase", "system-out", "system-err"}
        for prop in suite.find("properties"):
            assert prop.tag == "property" and set(prop.attrib) == {"name", "value"}
        cases = suite.findall("testcase")
        for case in cases:
            assert case.get("classname") and case.get("name") and re.match(seconds, case.get("time"))
            kinds = [c.tag for c in case]
            assert set(kinds) <= {"skipped", "error", "failure", "system-out", "system-err"}
            order = ["skipped", "error", "failure", "system-out", "system-err"]
            assert kinds == sorted(kinds, key=order.index), kinds
            for verdict in case.findall("failure") + case.findall("error"):
                assert verdict.get("message") is not None and verdict.get("type"), ET.tostring(verdict)
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
        assert int(suite.get("errors")) == sum(1 for c in cases if c.find("error") is not None)
        assert int(suite.get("skipped")) == sum(1 for c in cases if c.find("skipped") is not None)
        assert float(suite.get("time")) == pytest.approx(sum(float(c.get("time")) for c in cases), abs=0.01)
    return suites[0]


def test_junit_has_the_shape_ci_tools_validate(tmp_path, monkeypatch):
    out, _ = exported(tmp_path, monkeypatch, drill_results())
    suite = check_junit_shape((out / "junit.xml").read_text())
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert properties["connections"] == "300" and properties["rates"] == "[10.0, 20.0]"
    assert properties["thresholds.failover.max_downtime_ms"] == "5000.0" and properties["lab"] == "local-lab"
    assert suite.get("timestamp") == "2023-11-14T22:15:10"  # the first run's start, in UTC
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("8", "1", "4")
    types = {c.get("name"): v.get("type") for c in suite.iter("testcase") for v in c if v.tag in ("failure", "error")}
    assert types == {"native/native/rate10/rep2 failover": "threshold",
                     "native/native/rate20/rep1 failover": "invalid", "native/native/rate20/rep1 failback": "invalid",
                     "native/native/rate20/rep2 failover": "aborted", "native/native/rate20/rep2 failback": "aborted"}
    assert suite.find("testcase").get("time") == "10.000"  # the phase's seconds of load


def test_a_refused_export_is_an_error_case_and_says_why(tmp_path, monkeypatch):
    out, code = exported(tmp_path, monkeypatch, [], refused=REFUSAL)
    assert code == EXIT_REFUSED
    suite = check_junit_shape((out / "junit.xml").read_text())
    (case,) = suite.findall("testcase")
    assert case.get("name") == "preflight" and case.find("error").get("type") == "refused"
    assert case.find("error").get("message") == REFUSAL and suite.get("errors") == "1"
    report = (out / "report.md").read_text()
    assert f"**The export was refused** (exit 3), so no run of it was measured: {REFUSAL}" in report
    assert "Every run held its target rate" not in report and "No run was measured." in report
    assert json.loads((out / "results.json").read_text())["refused"] == REFUSAL


def test_runs_csv_columns_are_results_json_field_names(tmp_path, monkeypatch):
    out, _ = exported(tmp_path, monkeypatch, drill_results())
    rows = list(csv.DictReader(io.StringIO((out / "runs.csv").read_text())))
    assert list(rows[0]) == RUNS_CSV_COLUMNS
    assert all(name.islower() and name.replace("_", "").isalnum() for name in RUNS_CSV_COLUMNS)
    doc = json.loads((out / "results.json").read_text())
    first_run, first_row = doc["runs"][0], rows[0]
    phase = first_run["phases"][first_row["phase"]]
    by_class = {f"errors_{c.replace('-', '_')}" for c in ERROR_CLASSES}  # the keys of a phase's errors
    for name in RUNS_CSV_COLUMNS:  # each column is a field of the run, of its phase, or a phase's errors.CLASS
        assert name in first_run or name in phase or name == "errors" or name in by_class, name
    for name in ("run_id", "stack", "pair", "repetition", "connections", "fault", "status", "requests", "replies",
                 "success"):
        assert first_row[name] == str(first_run.get(name, phase.get(name))), name
    assert first_row["errors"] == str(phase["requests"] - phase["success"])
    assert first_row["errors_connrefused"] == str(phase["errors"]["connrefused"]) == "3"
    assert first_row["errors_client_timo"] == "0"
