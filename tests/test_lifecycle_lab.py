"""A stopped run on the real local lab: SIGINT to `hatui export` after the fault, and the TUI's abort
before it. Either way the run is journaled `aborted` (never finished), left out of the tables, the
cluster is left recovered, and a resumed export runs it again."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import xml.etree.ElementTree as ET

import pytest

from hatui.core import Core
from hatui.journal import read_journal
from tests.test_drill_lab import export, lab_copy, wait_steady

pytestmark = pytest.mark.lab
ARGS = ("--rates", "20", "--repeat", "1", "--conns", "300")  # a 15 s run: fault at 3.75 s, recovery at 9 s
RUN = "native/native/rate20/rep1"


def ended(journal) -> list[dict]:
    return [e for e in read_journal(journal) if e["kind"] == "run-finished"]


def test_sigint_after_the_fault_aborts_the_run_and_a_resume_runs_it_again(lab, tmp_path):
    wait_steady(lab)
    lab_file = lab_copy(tmp_path)
    out = tmp_path / "out"
    journal = out / "journal.jsonl"
    proc = export(lab_file, out, *ARGS)
    deadline = time.monotonic() + 60
    while not any(e["kind"] == "run-started" and time.time() - e["wall"] > 6 for e in read_journal(journal)):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr  # an aborted run fails the gate
    (entry,) = ended(journal)
    assert entry["state"] == "aborted" and entry["result"]["status"] == "aborted"
    assert entry["fault_sent"] and entry["recovery_sent"] and entry["cluster_left"] == "steady"
    report = (out / "report.md").read_text()
    assert f"| {RUN} | aborted | stopped by the operator: fault sent, recovery sent" in report
    assert "## native stack" not in report  # nothing averaged
    errors = [c.find("error") for c in ET.fromstring((out / "junit.xml").read_text()).iter("testcase")]
    assert errors and all(e is not None and e.get("type") == "aborted" for e in errors)

    wait_steady(lab)
    proc = export(lab_file, out, *ARGS)
    _, stderr = proc.communicate(timeout=200)
    assert proc.returncode == 0, stderr
    assert f"re-running {RUN}: aborted last time" in stderr
    assert [e["state"] for e in ended(journal)] == ["aborted", "finished"]
    (run,) = json.loads((out / "results.json").read_text())["runs"]
    assert run["status"] == "ok"
    report = (out / "report.md").read_text()
    assert "## Runs not in the tables" not in report and "## native stack" in report


async def test_tui_abort_before_the_fault_sends_neither_fault_nor_recovery(lab, tmp_path):
    from hatui.lab.pairs import wait_stable
    from hatui.ui.app import HatuiApp

    await asyncio.to_thread(wait_stable, lab, lab.pairs["native"])
    core = Core(lab, results_dir=tmp_path)
    app = HatuiApp(core, refresh_s=1.0, load_journal=False)
    journal = tmp_path / "journal.jsonl"
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            assert app.run_command("drill rates=20 repeat=1 conns=300 stacks=native")
            await pilot.pause()
            await pilot.press("y")
            deadline = time.monotonic() + 30
            while not any(e["kind"] == "run-started" for e in read_journal(journal)):
                assert time.monotonic() < deadline, "the drill did not start"
                await pilot.pause(0.2)
            await pilot.pause(1.5)  # load running, the fault (at 3.75 s) not yet sent
            await pilot.press("a")
            await app.workers.wait_for_complete([w for w in app.workers if w.group == "drill"])
            await pilot.pause()
    finally:
        await core.close()
    (entry,) = ended(journal)
    assert entry["state"] == "aborted" and not entry["fault_sent"] and not entry["recovery_sent"]
    assert "fault not sent, recovery not sent" in entry["result"]["error"]
    sent = [e["command"] for e in read_journal(journal) if e["kind"] == "command"]
    assert not any("heartbeat stop" in c or "heartbeat start" in c for c in sent), sent
    assert [e["exit_code"] for e in read_journal(journal) if e["kind"] == "drill-finished"] == [1]
    await asyncio.to_thread(wait_stable, lab, lab.pairs["native"])

