"""The UI's pure parts: formatting, rows, the `:` command parser, theme files, the drill view,
the load-run adapter and the `hatui` (no command) entry point. No app is started here."""

from __future__ import annotations

import argparse
import copy
import json

import pytest

from hatui.collectors.severity import Finding, Severity
from hatui.ui import format as fmt
from hatui.ui import model
from hatui.ui.commandline import CommandError, parse, pane_name
from hatui.ui.drill_form import plan_arguments
from hatui.ui.drillview import DrillView
from hatui.ui.fake import demo_drill_events, demo_results
from hatui.ui.fake_cluster import build_state, demo_state, failover_state, fake_lab, healthy_outputs
from hatui.ui.theming import BUILTIN_DIR, ThemeFileError, load_themes, theme_from_toml


@pytest.fixture(scope="module")
def lab():
    return fake_lab()


@pytest.fixture(scope="module")
def state(lab):
    return demo_state(lab)


# --- formatting ----------------------------------------------------------------------------------

def test_severity_marks_are_readable_without_colour():
    assert [fmt.mark(s) for s in Severity] == ["OK", "!", "!!"]
    assert fmt.mark(None) == "?"


@pytest.mark.parametrize("value, text", [(None, "-"), (0, "0m00s"), (192, "3m12s"), (3700, "1h01m"),
                                         (2 * 86400 + 3 * 3600, "2d3h"), (-5, "0m00s")])
def test_duration(value, text):
    assert fmt.duration(value) == text


def test_progress_bar_and_eta():
    assert fmt.bar(0, 12) == "[>         ]"
    assert fmt.bar(47.3, 12) == "[====>     ]"
    assert fmt.bar(100, 12) == "[==========]"
    assert fmt.bar(None) == ""
    assert fmt.progress(47.3, 72, 12) == "[====>     ] 47.3 %  eta 0:01:12"
    assert fmt.progress(5.0, None, 12) == "[>         ] 5.0 %"
    assert fmt.clock(27) == "00:27" and fmt.clock(3725) == "1:02:05" and fmt.clock(None) == "-"


def test_small_formatters():
    assert fmt.kib(None) == "-" and fmt.kib(0) == "0" and fmt.kib(512) == "512 KiB"
    assert fmt.kib(31_250) == "30.5 MiB" and fmt.kib(3 << 20) == "3.0 GiB"
    assert fmt.one_line("a\n  b\n\nc") == "a ; b ; c"
    assert fmt.one_line("x" * 20, 10) == "x" * 9 + "…"
    assert fmt.short_vip("10.251.0.110", "10.251.0.100") == ".110"
    assert fmt.short_vip("10.9.0.110", "10.251.0.100") == "10.9.0.110"
    assert fmt.numbers("10, 20 30") == [10.0, 20.0, 30.0]
    with pytest.raises(ValueError, match="'fast'"):
        fmt.numbers("10 fast")
    assert fmt.millis(620.0) == "0.62 s" and fmt.percent(98.333) == "98.3 %"


# --- rows --------------------------------------------------------------------------------------

def test_node_rows_show_unreachable_host_and_vip_holder(state, lab):
    rows = {r.key: r for r in model.node_rows(state, lab)}
    assert rows["master"].cells == ["OK", "master", "native", "master", "ok", "running", "10.251.0.100", "0.12", "3m12s"]
    assert rows["vm02b"].cells[4:6] == ["--", "unreachable"] and rows["vm02b"].severity == Severity.ALERT
    notes = [n.text for n in model.node_notes(state)]
    assert notes[0].startswith("vm02a: split brain")
    assert "vm02b: unreachable: timeout after 2 s" in notes


def test_drbd_rows_and_problems_only(state):
    rows = model.drbd_rows(state)
    keys = [r.key for r in rows]
    assert keys[:4] == ["master/r0", "master/r0/slave/0", "slave/r0", "slave/r0/master/0"]
    target = next(r for r in rows if r.key == "vm01b/r0/vm01a/0")
    assert target.cells == ["!", "  → vm01a", "Connected", "Primary", "UpToDate", "SyncTarget", "47.3%"]
    assert next(r for r in rows if r.key == "vm02b").cells[2] == "unreachable"
    problems = [r.key for r in model.drbd_rows(state, problems_only=True)]
    assert "master/r0" not in problems and "vm02a/r0/vm02b/0" in problems and "vm02b" in problems


def test_drbd_notes_show_each_resync_once_with_bar_and_eta(state):
    notes = [n.text for n in model.drbd_notes(state)]
    resyncs = [n for n in notes if "%" in n and "eta" in n]
    assert resyncs == ["vm01b r0 ← vm01a  SyncTarget  [=========>          ] 47.3 %  eta 0:01:12  out of sync 30.5 MiB"]
    assert any(n.startswith("vm02a r0: split brain") for n in notes)


def test_heartbeat_rows_keep_haresources_order(state):
    rows = model.heartbeat_resource_rows(state)
    assert [r.cells[2] for r in rows if r.key.startswith("native/")] == [
        "drbddisk::r0", "Filesystem::/dev/drbd0::/srv::ext4", "IPaddr2::10.251.0.100/24/eth0", "hatui-web"]
    pairs = {r.key: r.cells for r in model.heartbeat_pair_rows(state)}
    assert pairs["vm02"][4:6] == ["vm02a", "manual"]


def test_heartbeat_details_show_the_pairs_config_checks_and_latest_log_events(lab):
    state = failover_state(lab)
    notes = [(n.severity, n.text) for n in model.heartbeat_details(state, "native")]
    assert notes == [
        (Severity.OK, "master and slave: ha.cf and haresources match lab.toml"),
        (Severity.OK, "master 16:49:42 Initial resource acquisition complete (auto_failback)"),
        (Severity.OK, "master 16:49:42 remote resource transition completed."),
        (Severity.OK, "slave 16:49:54 mach_down takeover complete for node master."),
        (Severity.OK, "slave 16:49:54 Local Resource acquisition completed.")]
    state.nodes["vm01b"].ha_config = [Finding(Severity.WARN, "ha.cf auto_failback off, lab.toml says on")]
    assert model.heartbeat_details(state, "vm01")[0] == model.Note(
        Severity.WARN, "vm01b: ha.cf auto_failback off, lab.toml says on")
    assert model.heartbeat_details(state, None) == []


def test_takeover_tracker_sees_vip_moves(lab):
    tracker = model.TakeoverTracker()
    healthy = build_state(lab, healthy_outputs())
    assert tracker.observe(healthy) == []
    moved = failover_state(lab)
    [(pair, takeover)] = tracker.observe(moved)
    assert (pair, takeover.old, takeover.new, takeover.at) == ("native", "master", "slave", moved.taken_at)
    back = copy.deepcopy(healthy)
    back.taken_at += 10
    [(_, takeover)] = tracker.observe(back)
    assert (takeover.old, takeover.new) == ("slave", "master")
    assert tracker.last["native"].describe().endswith("slave→master")


def test_split_brain_and_nobody_in_the_title(lab):
    outputs = healthy_outputs()
    outputs["slave"] = outputs["slave"].replace("10.251.1.12", "10.251.1.12\n9: eth0    inet 10.251.0.100/24")
    outputs["vm01a"] = None
    state = build_state(lab, outputs)
    summary = dict((text.split(":")[0], (sev, text)) for sev, text in model.vip_summary(state))
    assert summary["native"] == (Severity.ALERT, "native: master+slave ALL hold 10.251.0.100")
    assert summary["vm01"][1] == "vm01: nobody holds .110"
    assert model.heartbeat_pair_rows(state)[0].cells[4] == "BOTH master+slave"


def test_vm_rows_with_and_without_a_listing(lab):
    bare = model.vm_rows(lab, None)
    assert [r.cells[1:6] for r in bare][0] == ["vm01a", "101", "pve1", "vm01", "-"]
    listing = [{"vmid": 101, "status": "stopped", "lock": "backup"}, {"name": "vm01b", "status": "running", "cpu": 0.5,
                                                                       "mem": 256 * 2**20, "maxmem": 512 * 2**20}]
    rows = {r.key: r for r in model.vm_rows(lab, listing)}
    assert rows["vm01a"].cells[5] == "stopped (lock backup)" and rows["vm01a"].severity == Severity.WARN
    assert rows["vm01b"].cells[5:8] == ["running", "50 %", "256/512 MB"]


def test_log_cells():
    from hatui.collectors.cluster import POLL_SCRIPT
    from hatui.drill.events import CommandSent

    ok = CommandSent(host="master", command=POLL_SCRIPT, exit_status=0, duration_s=0.04)
    assert model.log_cells(ok) == ["master", "0", "0.04s",
                                   "poll script (hostname hbstatus rscstatus addr uptime drbd crm_mon ha_cf haresources ha_log)"]
    bad = CommandSent(host="vm02b", command="cl_status\nhbstatus", exit_status=None, duration_s=2, error="timeout")
    assert model.log_cells(bad) == ["vm02b", "ERR", "2.00s", "(timeout) cl_status ; hbstatus"]


def test_result_rows(lab):
    rows = model.result_rows(demo_results(lab))
    assert rows[0].cells == ["1", "native", "50", "failover", "1200", "1189", "13", "98.9 %", "0.58 s", "yes"]
    assert len(rows) == 4


def test_journal_reading_tolerates_absence_and_garbage(tmp_path, lab):
    assert model.load_journal(tmp_path / "missing.jsonl") == ([], [])
    results = demo_results(lab)
    lines = [json.dumps({"kind": "run-finished", "result": r.to_dict()}) for r in results]
    lines += ["not json", json.dumps({"kind": "run-finished", "result": {"run_id": "x"}}), json.dumps([1, 2])]
    lines.append(json.dumps({"kind": "run-finished", "result": results[0].to_dict()}))
    (tmp_path / "j.jsonl").write_text("\n".join(lines) + "\n{\"torn")
    loaded, problems = model.load_journal(tmp_path / "j.jsonl")
    assert sorted(r.run_id for r in loaded) == sorted(r.run_id for r in results)
    assert problems and "could not be read" in problems[0]


# --- command line ------------------------------------------------------------------------------

def test_command_parser():
    assert parse(":fault native stop-heartbeat").args == ["native", "stop-heartbeat"]
    assert parse("f vm01 crash slave").name == "fault"
    assert parse("pane 2").args == ["drbd"] and parse("pane heart").args == ["heartbeat"]
    assert parse("drill rates=10,20 repeat=2").options == {"rates": "10,20", "repeat": "2"}
    assert parse("filter vm01 r0").args == ["vm01 r0"] and parse("filter").args == []
    assert parse("q").name == "quit"
    assert parse("fault native crash master").mutating and not parse("theme x").mutating
    for bad in ("", ":", "nonsense", "fault native", "pane", "pane 9", "drill rates", "drill speed=1", "quit now",
                'fault "native'):
        with pytest.raises(CommandError):
            parse(bad)
    assert pane_name("LOG") == "log"


def test_plan_arguments():
    assert plan_arguments({"stacks": "native virtual", "rates": "10, 20", "repeat": "2", "conns": "500",
                           "fault": "crash"}) == {"stacks": ["native", "virtual"], "rates": [10.0, 20.0],
                                                  "repeat": 2, "conns": 500, "fault": "crash"}
    assert plan_arguments({"stacks": "", "rates": " "}) == {}
    for values, message in [({"stacks": "cloud"}, "stacks"), ({"rates": "x"}, "rates"), ({"repeat": "1.5"}, "repeat"),
                            ({"conns": "many"}, "conns")]:
        with pytest.raises(ValueError, match=message):
            plan_arguments(values)


# --- themes ------------------------------------------------------------------------------------

def test_bundled_themes_load_and_define_severity_colours():
    loaded = load_themes([BUILTIN_DIR])
    assert loaded.failures == []
    themes = {t.name: t for t in loaded.themes}
    assert {"hatui-dark", "hatui-light", "hatui-contrast", "hatui-amber"} <= set(themes)
    assert not themes["hatui-light"].dark
    for theme in themes.values():
        assert {"sev-ok", "sev-warn", "sev-alert"} <= set(theme.variables)
    contrast = themes["hatui-contrast"]
    assert (contrast.background, contrast.foreground) == ("#000000", "#FFFFFF")


@pytest.mark.parametrize("text, message", [
    ('name = "x"\nprimary = "nope"', "not a colour"),
    ('name = "x"', "missing primary"),
    ('primary = "#fff"', "missing name"),
    ('name = "x"\nprimary = "#fff"\nsparkle = true', "unknown key"),
    ('name = "x"\nprimary = "#fff"\ndark = "yes"', "dark"),
    ('name = "x"\nprimary = "#fff"\n[variables]\nsev-ok = "nope"', "sev-ok"),
    ("name = ", "not valid TOML"),
])
def test_broken_theme_files_say_why(text, message):
    with pytest.raises(ThemeFileError, match=message):
        theme_from_toml(text)


def test_load_themes_collects_failures_and_later_dirs_win(tmp_path):
    (tmp_path / "a.toml").write_text('name = "hatui-dark"\nprimary = "#123456"\n')
    (tmp_path / "b.toml").write_text("garbage =")
    loaded = load_themes([BUILTIN_DIR, tmp_path])
    assert next(t for t in loaded.themes if t.name == "hatui-dark").primary == "#123456"
    assert len(loaded.failures) == 1 and "b.toml" in loaded.failures[0]


# --- drill view and load runs ------------------------------------------------------------------

def test_drill_view_folds_runner_events(lab):
    view = DrillView()
    for event in demo_drill_events(lab):
        view.apply(event)
    assert view.run.index == 2 and view.phase == "failback"
    assert (view.attempted, view.success) == (1400, 1373)
    assert view.errors == {"connrefused": 25, "client-timo": 2}
    assert view.marks == {"fault-sent": 10.0, "vip-moved": 10.8, "recovery-sent": 24.0}
    assert len(view.seconds) == 28 and view.errors_s[10] == 21
    lines = view.status_lines()
    assert lines[0] == "Drill  native  50 conn/s  2000 conns  run 2 of 2  fault: stop-heartbeat on master"
    assert lines[1] == "phase FAILBACK   00:28 / 00:40"
    assert lines[3] == "downtime  failover -   failback -"
    # a repeated second replaces, never duplicates
    view.apply(demo_drill_events(lab)[-1])
    assert len(view.seconds) == 28
    from hatui.drill.events import DrillFinished, DrillRunFinished

    view.apply(DrillRunFinished(run_id="x", result=demo_results(lab)[1]))
    assert view.status_lines()[3] == "downtime  failover 0.62 s (±10 ms)   failback 0.45 s (±10 ms)"
    view.apply(DrillFinished(results=[], exit_code=0))
    assert not view.running and view.ended == "finished (exit 0)"


def test_load_events_become_drill_events(lab):
    from hatui.load import events as le
    from hatui.ui.loadrun import LoadToDrillEvents, make_specs, summary_line

    pair = lab.pairs["native"]
    spec, probe = make_specs(lab, pair, 50, 100)
    assert spec.url == "http://10.251.0.100/index.html" and probe.interval == 0.01
    adapter = LoadToDrillEvents(pair, 50, 100)
    view = DrillView()
    view.start(None)
    for event in adapter.convert(le.LoadStarted(t0_monotonic=0.0, t0_wall=0.0, engine="builtin")):
        view.apply(event)
    load = le.StreamCounters(launched=50, completed=50, replies=48, success=48, errors={"connrefused": 2})
    tick = le.Tick(second=0, counters=le.Counters(state="running", elapsed=1.0, load=load, probe=None),
                   load_last=load, probe_last=None)
    for event in adapter.convert(tick):
        view.apply(event)
    ended = le.OutageEnded(stream="probe", t=0.9, duration=0.62, errors=3, served_by_before="master",
                           served_by_after="slave")
    for event in adapter.convert(ended):
        view.apply(event)
    lines = view.status_lines()
    assert lines[0].startswith("Load run  native (native)  50 conn/s  100 conns")
    assert "availability 96.0 %" in lines[2]
    assert lines[3] == "outages 1, downtime 0.62 s (probe stream)"

    class Summary:
        requests, availability_pct, downtime_s, valid = 100, 99.0, 0.62, True

    assert summary_line(Summary()) == "load run finished: 100 requests, availability 99.00 %, downtime 0.62 s"


# --- the `hatui` entry point ---------------------------------------------------------------------

def test_tui_claims_only_the_bare_command():
    from hatui.commands import tui

    assert tui.claims(argparse.Namespace(command=None, export=None))
    assert not tui.claims(argparse.Namespace(command="check", export=None))
    assert not tui.claims(argparse.Namespace(command=None, export="results"))


def test_tui_options_and_config_errors(tmp_path, capsys):
    from hatui.cli import main

    bad = tmp_path / "lab.toml"
    bad.write_text("[lab]\nname = 3\n")
    assert main(["--lab", str(bad), "--theme", "hatui-light", "--read-only"]) == 2
    err = capsys.readouterr().err
    assert "lab.name" in err and "problem(s)" in err


def test_tui_needs_a_terminal(capsys):
    from hatui.cli import main

    from pathlib import Path

    lab = Path(__file__).resolve().parents[1] / "lab.toml"
    assert main(["--lab", str(lab)]) == 2  # pytest captures stdout: not a terminal
    assert "needs a terminal" in capsys.readouterr().err
