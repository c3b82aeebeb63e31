"""DRBD parsers against every captured DRBD output in tests/fixtures, values read off the files."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from hatui.collectors.drbd import DrbdResource, parse_drbd
from hatui.collectors.drbd_log import parse_drbd_kernel_log, parse_drbdadm_errors
from hatui.collectors.severity import ResultList, Severity

OK, WARN, ALERT = Severity.OK, Severity.WARN, Severity.ALERT


class P(NamedTuple):  # expected peer
    name: str | None
    connection: str | None
    role: str | None
    disk: str | None
    replication: str | None
    done: float | None
    oos: int | None
    severity: Severity


class R(NamedTuple):  # expected resource
    name: str | None
    minor: int | None
    role: str | None
    disk: str | None
    severity: Severity
    peers: list[P]


def _peer(p):
    return P(p.name, p.connection, p.role, p.disk, p.replication, p.done, p.out_of_sync_kib, p.severity)


def _res(r: DrbdResource) -> R:
    return R(r.name, r.minor, r.role, r.disk, r.severity, [_peer(p) for p in r.peers])


UP = P(None, "Connected", "Secondary", "UpToDate", "Established", None, 0, OK)

# fixture -> (format, expected resources); every status-format DRBD fixture is listed here.
STATUS_FIXTURES: dict[str, tuple[str, list[R]]] = {
    # /proc/drbd 8.0 - 8.4
    "drbd80-proc-standalone-inconsistent-legacy-st.txt": ("proc", [
        R(None, 0, "Secondary", "Inconsistent", ALERT,
          [P(None, "StandAlone", "Unknown", "DUnknown", None, None, None, ALERT)])]),
    "drbd83-proc-secondary-5flags.txt": ("proc", [
        R(None, 0, "Secondary", "UpToDate", OK, [UP._replace(role="Primary")])]),
    "drbd83-proc-wfconnection-peer-outdated-srcversion.txt": ("proc", [
        R(None, 0, "Primary", "UpToDate", WARN,
          [P(None, "WFConnection", "Unknown", "Outdated", None, None, 0, WARN)]),
        R(None, 1, "Primary", "UpToDate", WARN,
          [P(None, "WFConnection", "Unknown", "Inconsistent", None, None, 305611780, WARN)])]),
    "drbd84-proc-connected-3minors.txt": ("proc", [
        R(None, 0, "Secondary", "UpToDate", OK, [UP]),
        R(None, 1, "Primary", "UpToDate", OK, [UP]),
        R(None, 2, "Secondary", "UpToDate", OK, [UP._replace(role="Primary", oos=None)])]),
    "drbd84-proc-connected-both-inconsistent.txt": ("proc", [
        R(None, 1, "Secondary", "Inconsistent", WARN,
          [P(None, "Connected", "Secondary", "Inconsistent", "Established", None, 1048508, WARN)])]),
    "drbd84-proc-connected-uptodate.txt": ("proc", [R(None, 1, "Primary", "UpToDate", OK, [UP])]),
    "drbd84-proc-constructed-diskless-unconfigured.txt": ("proc", [
        R(None, 0, "Primary", "Diskless", ALERT, [UP]),
        R(None, 1, None, None, WARN, [P(None, "Unconfigured", None, None, None, None, None, WARN)]),
        R(None, 3, "Secondary", "UpToDate", WARN,
          [P(None, "Connected", "Secondary", "UpToDate", "VerifyS", 47.3, 0, WARN)])]),
    "drbd84-proc-splitbrain-survivor-wfconnection.txt": ("proc", [
        R(None, 1, "Primary", "UpToDate", WARN,
          [P(None, "WFConnection", "Unknown", "DUnknown", None, None, 20, WARN)])]),
    "drbd84-proc-syncing.txt": ("proc", [
        R(None, 1, "Primary", "UpToDate", WARN,
          [P(None, "Connected", "Secondary", "Inconsistent", "SyncSource", 0.4, 1045636, WARN)])]),
    "drbd84-proc-wfconnection-inconsistent.txt": ("proc", [
        R(None, 1, "Secondary", "Inconsistent", WARN,
          [P(None, "WFConnection", "Unknown", "DUnknown", None, None, 1048508, WARN)])]),
    "drbd9-proc-drbd-version-only.txt": ("proc", []),
    # drbdadm / drbdsetup status text
    "drbd84-utils-status.txt": ("status", [
        R("home", None, "Secondary", "UpToDate", OK, [UP._replace(name="peer", oos=None)])]),
    "drbd84-utils-status-verbose-statistics.txt": ("status", [
        R("home", 0, "Secondary", "UpToDate", OK, [UP._replace(name="peer")])]),
    "drbd9-status-both-inconsistent.txt": ("status", [
        R("wwwdata", None, "Secondary", "Inconsistent", WARN,
          [P("pcmk-2", "Connected", "Secondary", "Inconsistent", "Established", None, None, WARN)])]),
    "drbd9-status-connected-uptodate-2nodes.txt": ("status", [
        R("wwwdata", None, "Primary", "UpToDate", OK, [UP._replace(name="pcmk-1", oos=None)]),
        R("wwwdata", None, "Secondary", "UpToDate", OK,
          [UP._replace(name="pcmk-1", role="Primary", oos=None)])]),
    "drbd9-status-connecting-inconsistent.txt": ("status", [
        R("wwwdata", None, "Secondary", "Inconsistent", WARN,
          [P("pcmk-2", "Connecting", None, None, None, None, None, WARN)])]),
    "drbd9-status-inconsistent-with-diskless-primary.txt": ("status", [
        R("one-vm-7707-disk-0", None, "Secondary", "Inconsistent", WARN, [
            UP._replace(name="m10c41", oos=None),
            P("m11c4", "Connected", "Primary", "Diskless", "Established", None, None, WARN)])]),
    "drbd9-status-multi-resource-connecting.txt": ("status", [
        R("lab-sysprep", None, "Secondary", "Consistent", WARN,
          [P("mk-a02n02", "Connecting", None, None, None, None, None, WARN)]),
        R("srv00-sql1", None, "Secondary", "UpToDate", OK, [UP._replace(name="mk-a02n02", oos=None)]),
        R("srv01-lab01", None, "Secondary", "Consistent", WARN,
          [P("mk-a02n02", "Connecting", None, None, None, None, None, WARN)]),
        R("srv02-lab02", None, "Secondary", "UpToDate", OK, [UP._replace(name="mk-a02n02", oos=None)])]),
    "drbd9-status-syncsource.txt": ("status", [
        R("wwwdata", None, "Primary", "UpToDate", WARN,
          [P("pcmk-2", "Connected", "Secondary", "Inconsistent", "SyncSource", None, None, WARN)])]),
    "drbd9-status-synctarget-done.txt": ("status", [  # three snapshots, in order
        R("postgresql", None, "Secondary", "Inconsistent", WARN,
          [P("d52-54-77-77-01-01", "Connecting", None, None, None, None, None, WARN)]),
        R("postgresql", None, "Secondary", "Inconsistent", WARN,
          [P("d52-54-77-77-01-01", "Connected", "Primary", "UpToDate", "SyncTarget", 0.08, None, WARN)]),
        R("postgresql", None, "Secondary", "UpToDate", OK,
          [UP._replace(name="d52-54-77-77-01-01", role="Primary", oos=None)])]),
    "drbd9-status-verbose-peer-client.txt": ("status", [
        R("my_ssd_res", 1000, "Secondary", "Inconsistent", WARN, [
            P(n, "Connected", "Secondary", "Diskless", "Established", None, None, OK)
            for n in ("node1", "node2", "node4")])]),
    "drbd9-status-verbose-statistics-9.0.6.txt": ("status", [
        R(".drbdctrl", 0, "Primary", "UpToDate", OK, [UP._replace(name="tom")])]),
    # drbdsetup status --json
    "drbd9-status-json.json": ("json", [
        R("1-single-0", 2, "Primary", "UpToDate", OK,
          [UP._replace(name="SLE15-sp1-gm-drbd1145296-node2")])]),
    "drbd9-status-json-syncsource-constructed.json": ("json", [
        R("r0", 0, "Primary", "UpToDate", WARN,
          [P("node2", "Connected", "Secondary", "Inconsistent", "SyncSource", 45.3, 573571, WARN)])]),
    # drbdsetup events2
    "drbd84-events2-now.txt": ("events2", [
        R("r0", 7, "Secondary", "UpToDate", OK, [UP._replace(name="remote-host", oos=None)])]),
    "drbd84-events2-statistics-now.txt": ("events2", [
        R("r0", 7, "Secondary", "UpToDate", OK, [UP._replace(name="remote-host")])]),
    "drbd9-events2-now.txt": ("events2", [
        R("r0", 7, "Secondary", "UpToDate", OK, [UP._replace(name="remote-host", oos=None)])]),
    "drbd9-events2-statistics-now.txt": ("events2", [
        R("r0", 7, "Secondary", "UpToDate", OK, [UP._replace(name="remote-host")])]),
    "drbd9-events2-timestamps-statistics-now.txt": ("events2", [
        R("pvc-0a2826c9-7108-11e9-8f74-0026b954ca4c", 1016, "Secondary", "UpToDate", OK,
          [UP._replace(name="kubelet-b")])]),
    "drbd9-events2-exists-initial-state-plain.txt": ("events2", [
        R("some-resource", 1000, "Secondary", "Diskless", ALERT, [])]),
    "drbd9-events2-create-destroy-plain.txt": ("events2", []),
    "drbd9-events2-promotion-score-inconsistent-plain.txt": ("events2", [
        R("some-resource", 1000, "Secondary", "Inconsistent", WARN,
          [UP._replace(name="some-peer", oos=None)])]),
    "drbd9-events2-sync-plain.txt": ("events2", [
        R("some-resource", 1000, "Secondary", "UpToDate", WARN,
          [P("some-peer", "Connected", "Secondary", "Inconsistent", "SyncSource", 37.5, None, WARN)])]),
    "drbd9-events2-sync-statistics.txt": ("events2", [
        R("some-resource", 1000, "Secondary", "UpToDate", WARN,
          [P("some-peer", "Connected", "Secondary", "Inconsistent", "SyncSource", 37.5, 2500, WARN)])]),
    "drbd9-events2-helper-call-response-plain.txt": ("events2", [
        R("some-resource", 1000, "Secondary", "Diskless", ALERT,
          [P("some-peer", "StandAlone", "Unknown", "DUnknown", "Off", None, None, ALERT)])]),
    "drbd9-events2-helper-call-response-timestamps.txt": ("events2", [
        R("some-resource", 1000, "Secondary", "Diskless", ALERT,
          [P("some-peer", "StandAlone", "Unknown", "DUnknown", "Off", None, None, ALERT)])]),
}
# the create/change stream ends with: device UpToDate, peer Connected/Established, role Primary
_CREATE_CHANGE_END = [R("some-resource", 1000, "Primary", "UpToDate", OK,
                        [UP._replace(name="some-peer", oos=None)])]
for _variant, _oos in (("plain", None), ("timestamps", None), ("diff", None),
                       ("color-ansi", None), ("statistics", 0), ("full", 0)):
    STATUS_FIXTURES[f"drbd9-events2-create-change-{_variant}.txt"] = ("events2", [
        r._replace(peers=[p._replace(oos=_oos) for p in r.peers]) for r in _CREATE_CHANGE_END])

KERNEL_LOG_FIXTURES = {  # fixture -> (number of DRBD events, worst severity)
    "drbd83-kernel-down-detach.log": (18, ALERT),
    "drbd84-kernel-connect-dcon.log": (19, WARN),
    "drbd84-kernel-resync-bitmap.log": (15, WARN),
    "drbd84-kernel-splitbrain.log": (9, ALERT),
    "drbd84-kernel-state-change-failed.log": (6, WARN),
    "drbd84-kernel-unrelated-data.log": (13, ALERT),
    "drbd9-kernel-resync-done-and-disconnect.log": (11, ALERT),
    "drbd9-kernel-resync.log": (12, WARN),
}
ERROR_FIXTURES = {"drbd-cli-errors.txt"}

COVERED = set(STATUS_FIXTURES) | set(KERNEL_LOG_FIXTURES) | ERROR_FIXTURES


@pytest.mark.parametrize("name", sorted(STATUS_FIXTURES))
def test_status_fixture_values(name, read_fixture):
    fmt, expected = STATUS_FIXTURES[name]
    result = parse_drbd(read_fixture(name))
    assert isinstance(result, ResultList) and result.format == fmt
    assert [_res(r) for r in result] == expected
    if name != "drbd9-proc-drbd-version-only.txt":
        assert result.problems == []
    assert all(r.source == fmt for r in result)


# --- /proc/drbd details --------------------------------------------------------------------------

def test_proc_header_flags_protocol(read_fixture):
    (legacy,) = parse_drbd(read_fixture("drbd80-proc-standalone-inconsistent-legacy-st.txt"))
    assert (legacy.version, legacy.protocol, legacy.io_flags) == ("8.0.13", None, "r---")
    assert legacy.reason == "peer: StandAlone"
    (five,) = parse_drbd(read_fixture("drbd83-proc-secondary-5flags.txt"))
    assert (five.version, five.protocol, five.io_flags) == ("8.3.7", "C", "r----")
    (wf,) = parse_drbd(read_fixture("drbd84-proc-wfconnection-inconsistent.txt"))
    assert wf.io_flags == "r----s"  # last flag: AL updates suspended, not I/O suspended
    assert "I/O suspended" not in wf.reason
    r0, r1 = parse_drbd(read_fixture("drbd83-proc-wfconnection-peer-outdated-srcversion.txt"))
    assert r0.version == "8.3.11" and r1.peer.reason.endswith("305611780 KiB out of sync")


def test_proc_sync_progress_eta_speed(read_fixture):
    (res,) = parse_drbd(read_fixture("drbd84-proc-syncing.txt"))
    peer = res.peer
    assert (peer.done, peer.eta_s, peer.speed_kib_s) == (0.4, 653.0, 1436)
    assert res.reason == "peer: SyncSource 0.4%; peer: peer disk Inconsistent; peer: 1045636 KiB out of sync"


def test_proc_constructed_diskless_unconfigured_verify(read_fixture):
    diskless, unconfigured, verify = parse_drbd(read_fixture("drbd84-proc-constructed-diskless-unconfigured.txt"))
    assert diskless.reason == "local disk Diskless; Primary with disk Diskless"
    assert unconfigured.peer.connection == "Unconfigured" and unconfigured.minor == 1
    assert verify.minor == 3  # the hole (minor 2) is an empty line
    assert (verify.peer.done, verify.peer.eta_s, verify.peer.speed_kib_s) == (47.3, 42.0, 13072)


def test_proc_megabyte_units_and_legacy_counters():
    text = (" 0: cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate C r----\n"
            "    ns:0 nr:8 dw:8 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0\n"
            "\t[>...................] sync'ed: 10.2% (4194304/4670000)M\n"
            "\tfinish: 106:25:26 speed: 10,940 (10,204) want: 30,720 K/sec (stalled)\n")
    (res,) = parse_drbd(text)
    peer = res.peer
    assert (peer.connection, peer.replication, peer.done) == ("Connected", "SyncTarget", 10.2)
    assert peer.out_of_sync_kib == 4194304 * 1024  # no oos counter: the M figure is used
    assert (peer.eta_s, peer.speed_kib_s) == (106 * 3600 + 25 * 60 + 26, 10940)
    assert res.severity == WARN and "local disk Inconsistent" in res.reason


def test_proc_dual_primary_is_alert_unless_allowed():
    text = " 0: cs:Connected ro:Primary/Primary ds:UpToDate/UpToDate C r-----\n"
    (res,) = parse_drbd(text)
    assert res.severity == ALERT and "two Primaries" in res.reason
    (allowed,) = parse_drbd(text, allow_two_primaries=True)
    assert allowed.severity == OK


def test_proc_cs_mapping_and_unknown_words():
    text = (" 0: cs:WFReportParams ro:Secondary/Unknown ds:UpToDate/DUnknown C r-----\n"
            " 1: cs:Frobnicating ro:Secondary/Secondary ds:UpToDate/Wobbly C r-----\n"
            " 2: cs:StartingSyncT ro:Secondary/Primary ds:Inconsistent/UpToDate C r-----\n"
            " 3: cs:Connected ro:Primary/Secondary ds:Outdated/UpToDate C s-----\n")
    r0, r1, r2, r3 = parse_drbd(text)
    assert (r0.peer.connection, r0.peer.replication, r0.severity) == ("WFReportParams", None, WARN)
    assert (r1.peer.connection, r1.peer.disk, r1.severity) == ("Frobnicating", "Wobbly", WARN)
    assert "unknown connection state 'Frobnicating'" in r1.reason
    assert "unknown disk state 'Wobbly'" in r1.reason
    assert (r2.peer.connection, r2.peer.replication) == ("Connected", "StartingSyncT")
    assert r3.severity == ALERT and "Primary with disk Outdated" in r3.reason
    assert "I/O suspended" in r3.reason


def test_drbd9_proc_without_status_is_a_problem(read_fixture):
    result = parse_drbd(read_fixture("drbd9-proc-drbd-version-only.txt"))
    assert result == [] and result.format == "proc"
    assert result.problems == ["DRBD 9 /proc/drbd carries no resource status (use drbdsetup status/events2)"]
    assert result.severity == WARN


# --- status text details -------------------------------------------------------------------------

def test_status_wrapped_lines_are_joined(read_fixture):
    (res,) = parse_drbd(read_fixture("drbd84-utils-status-verbose-statistics.txt"))
    assert res.suspended == "no"
    (vol,) = res.volumes
    assert (vol.volume, vol.minor, vol.disk, vol.size_kib, vol.blocked) == (0, 0, "UpToDate", 5033792, "no")
    (pd,) = res.peer.volumes
    assert (pd.resync_suspended, pd.out_of_sync_kib, pd.replication) == ("no", 0, "Established")
    assert res.peer.congested is False


def test_status_verbose_two_volumes_and_clients(read_fixture):
    (res,) = parse_drbd(read_fixture("drbd9-status-verbose-peer-client.txt"))
    assert res.node_id == 0 and res.suspended == "no" and res.quorum is True
    assert [(v.volume, v.minor, v.disk) for v in res.volumes] == [(0, 1000, "UpToDate"), (1, 1001, "Inconsistent")]
    assert res.reason == "local volume 1 disk Inconsistent"
    assert [(p.name, p.node_id, p.client) for p in res.peers] == [("node1", 2, True), ("node2", 3, True), ("node4", 1, True)]
    (ctrl,) = parse_drbd(read_fixture("drbd9-status-verbose-statistics-9.0.6.txt"))
    assert [v.minor for v in ctrl.volumes] == [0, 1] and ctrl.peer.node_id == 1
    assert [pd.out_of_sync_kib for pd in ctrl.peer.volumes] == [0, 0]


def test_status_diskless_primary_peer_is_warn_not_alert(read_fixture):
    (res,) = parse_drbd(read_fixture("drbd9-status-inconsistent-with-diskless-primary.txt"))
    assert res.peers[1].reason == "peer disk Diskless; Primary with peer disk Diskless"
    assert res.reason.startswith("local disk Inconsistent; m11c4: ")


def test_status_connected_defaults_and_prompts(read_fixture):
    first, second = parse_drbd(read_fixture("drbd9-status-connected-uptodate-2nodes.txt"))
    assert first.peer.connection == "Connected" and first.peer.replication == "Established"
    assert second.peer.role == "Primary" and second.severity == OK


def test_status_quorum_and_suspended_are_alerts():
    text = ("r0 role:Primary suspended:quorum\n  disk:UpToDate quorum:no\n"
            "  peer connection:StandAlone\n\n")
    (res,) = parse_drbd(text)
    assert res.severity == ALERT
    assert res.reason == "I/O suspended (quorum); quorum lost; peer: StandAlone"


def test_status_nothing_configured_is_empty_without_problem():
    result = parse_drbd("# No currently configured DRBD found.\n")
    assert result == [] and result.problems == [] and result.format == "status"


# --- JSON details --------------------------------------------------------------------------------

def test_json_details(read_fixture):
    (res,) = parse_drbd(read_fixture("drbd9-status-json-syncsource-constructed.json"))
    assert (res.node_id, res.suspended, res.quorum) == (0, "no", True)
    assert res.volumes[0].size_kib == 1048576 and res.volumes[0].open == "yes"
    peer = res.peer
    assert (peer.node_id, peer.eta_s, peer.client, peer.congested) == (1, 11.0, False, False)
    assert peer.volumes[0].resync_suspended == "no"
    (real,) = parse_drbd(read_fixture("drbd9-status-json.json"))
    assert real.peer.node_id == 2 and real.volumes[0].client is False


def test_json_single_object_and_bad_types():
    (res,) = parse_drbd('{"name": "r9", "role": 5, "devices": "nope", "connections": [1, {"name": 7}]}')
    assert res.name == "r9" and res.role == "5" and res.volumes == []
    assert res.peer.name == "7" and res.severity == WARN  # "5" is an unknown role
    assert parse_drbd('[1, "x"]').problems == ["JSON item 0 is not an object", "JSON item 1 is not an object"]


# --- events2 details -----------------------------------------------------------------------------

def test_events2_statistics_eta_and_timestamps(read_fixture):
    (res,) = parse_drbd(read_fixture("drbd9-events2-sync-statistics.txt"))
    assert res.peer.eta_s == 10.0 and res.peer.volumes[0].out_of_sync_kib == 2500
    (ts,) = parse_drbd(read_fixture("drbd9-events2-timestamps-statistics-now.txt"))
    assert ts.timestamp == "2019-05-07T13:50:23.973595-07:00"
    assert ts.volumes[0].size_kib == 515948 and ts.peer.node_id == 2
    (tm,) = parse_drbd(read_fixture("drbd9-events2-create-change-timestamps.txt"))
    assert tm.timestamp == "TIME"


def test_events2_two_volumes(read_fixture):
    (res,) = parse_drbd(read_fixture("drbd84-events2-statistics-now.txt"))
    assert [(v.volume, v.minor, v.size_kib) for v in res.volumes] == [(0, 7, 6291228), (1, 8, 104854364)]
    assert [pd.volume for pd in res.peer.volumes] == [0, 1]
    assert res.suspended == "no" and res.peer.node_id == 1 and res.peer.congested is False


def test_events2_stream_is_merged_in_order():
    base = ("exists -\n"
            "create resource name:r0 role:Secondary suspended:no\n"
            "create device name:r0 volume:0 minor:0 disk:UpToDate client:no\n"
            "create connection name:r0 peer-node-id:1 conn-name:b connection:Connected role:Secondary\n"
            "create peer-device name:r0 peer-node-id:1 conn-name:b volume:0 replication:SyncSource "
            "peer-disk:Inconsistent done:12.00\n")
    (syncing,) = parse_drbd(base)
    assert syncing.peer.done == 12.0 and syncing.severity == WARN
    done = base + "change peer-device name:r0 peer-node-id:1 conn-name:b volume:0 replication:Established peer-disk:UpToDate\n"
    (synced,) = parse_drbd(done)
    assert synced.peer.done is None and synced.severity == OK  # done: does not linger
    renamed = done + "rename resource name:r0 new_name:web\n"
    assert [r.name for r in parse_drbd(renamed)] == ["web"]
    gone = done + "destroy connection name:r0 peer-node-id:1 conn-name:b\n"
    (alone,) = parse_drbd(gone)
    assert alone.peers == [] and alone.severity == OK


def test_events2_split_brain_helper_and_two_primaries():
    text = ("exists resource name:r0 role:Primary suspended:no\n"
            "exists device name:r0 volume:0 minor:0 disk:UpToDate\n"
            "exists connection name:r0 peer-node-id:1 conn-name:b connection:Connected role:Primary\n"
            "exists -\n"
            "call helper name:r0 peer-node-id:1 conn-name:b volume:0 helper:split-brain\n"
            "change connection name:r0 peer-node-id:1 conn-name:b connection:StandAlone role:Unknown\n")
    (res,) = parse_drbd(text)
    assert res.split_brain and res.severity == ALERT
    assert res.reason == "split brain; b: StandAlone"
    two = text.split("exists -")[0]
    (both,) = parse_drbd(two)
    assert both.reason == "two Primaries (also b)"
    assert parse_drbd(two, allow_two_primaries=True)[0].severity == OK


def test_events2_helper_initial_split_brain_is_not_split_brain():
    text = ("exists resource name:r0 role:Secondary\n"
            "call helper name:r0 peer-node-id:1 conn-name:b helper:initial-split-brain\n")
    assert parse_drbd(text)[0].split_brain is False


def test_events2_garbage_lines_are_problems():
    result = parse_drbd("exists resource name:r0 role:Secondary\nthis is not events2\n")
    assert [r.name for r in result] == ["r0"]
    assert result.problems == ["line 2: not an events2 line: 'this is not events2'"]


# --- not status: kernel logs, command errors -----------------------------------------------------

@pytest.mark.parametrize("name", sorted(KERNEL_LOG_FIXTURES))
def test_kernel_logs_are_not_status_but_parse_as_logs(name, read_fixture):
    text = read_fixture(name)
    status = parse_drbd(text)
    assert status == [] and status.problems[0].startswith("unrecognised DRBD output")
    events = parse_drbd_kernel_log(text)
    count, severity = KERNEL_LOG_FIXTURES[name]
    assert (len(events), events.severity, events.problems) == (count, severity, [])


def test_kernel_log_values(read_fixture):
    sb = parse_drbd_kernel_log(read_fixture("drbd84-kernel-splitbrain.log"))
    kinds = [(e.kind, e.severity) for e in sb]
    assert ("split_brain", ALERT) in kinds and ("helper", ALERT) in kinds
    split = next(e for e in sb if e.kind == "split_brain")
    assert (split.timestamp, split.minor, split.resource) == ("Sep  7 19:56:52", 6, None)
    last = sb[-2]
    assert (last.resource, last.changes) == ("resource6", {"conn": ("WFReportParams", "Disconnecting")})

    v9 = parse_drbd_kernel_log(read_fixture("drbd9-kernel-resync.log"))
    first = v9[0]
    assert (first.timestamp, first.resource, first.peer, first.volume, first.minor) == (
        "34368.492648", "one-vm-8737-disk-0", "m14c37", None, None)
    assert first.changes == {"conn": ("Connecting", "Connected"), "peer": ("Unknown", "Secondary")}
    began = next(e for e in v9 if e.kind == "resync_started")
    assert (began.volume, began.minor, began.peer) == (0, 1053, "m14c37")
    susp = next(e for e in v9 if "resync-susp" in e.changes)
    assert susp.changes["resync-susp"] == ("no", "connection dependency")

    done = parse_drbd_kernel_log(read_fixture("drbd9-kernel-resync-done-and-disconnect.log"))
    assert done[0].kind == "resync_done" and done[0].timestamp == "Jan 18 11:20:11"
    assert done[-1].timestamp == "Thu Feb 15 09:38:26 2024"
    assert done[-1].changes == {"disk": ("Detaching", "Diskless")} and done[-1].severity == ALERT

    down = parse_drbd_kernel_log(read_fixture("drbd83-kernel-down-detach.log"))
    assert [e.changes["disk"][1] for e in down if "disk" in e.changes] == ["Failed", "Diskless", "Attaching"]
    dcon = parse_drbd_kernel_log(read_fixture("drbd84-kernel-connect-dcon.log"))
    assert dcon[0].resource == "export" and dcon[1].minor == 0
    refused = parse_drbd_kernel_log(read_fixture("drbd84-kernel-state-change-failed.log"))
    assert [e.kind for e in refused].count("state_change_failed") == 1  # rhcs_fence lines ignored
    unrelated = parse_drbd_kernel_log(read_fixture("drbd84-kernel-unrelated-data.log"))
    assert unrelated[4].kind == "unrelated_data" and unrelated[-3].reason == "conn -> StandAlone"
    bitmap = parse_drbd_kernel_log(read_fixture("drbd84-kernel-resync-bitmap.log"))
    assert bitmap[-3].changes == {"conn": ("WFBitMapS", "SyncSource"), "pdsk": ("Consistent", "Inconsistent")}


def test_split_brain_auto_solved_is_warn():
    (ev,) = parse_drbd_kernel_log("[ 1.0] block drbd0: Split-Brain detected, 1 primaries, automatically solved. Sync from this node")
    assert (ev.kind, ev.severity) == ("split_brain", WARN)


def test_drbdadm_errors(read_fixture):
    text = read_fixture("drbd-cli-errors.txt")
    assert parse_drbd(text).problems == ["unrecognised DRBD output: '[root@storage2 ~]# drbdadm secondary r0'"]
    mismatch, failure, refused = parse_drbdadm_errors(text)
    assert (mismatch.kind, mismatch.severity) == ("version_mismatch", WARN)
    assert mismatch.message == "DRBD module version: 8.4.3; userland version: 8.4.4"
    assert (failure.kind, failure.minor, failure.code, failure.message, failure.detail, failure.exit_code,
            failure.command) == ("failure", "0", 127, "Device minor not allocated", "unknown minor", 10,
                                 "drbdsetup secondary 0")
    assert (refused.kind, refused.code, refused.message, refused.exit_code) == (
        "state_change_failed", -1, "Multiple primaries not allowed by config", 11)
    assert refused.severity == ALERT


# --- unreadable input ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, problem", [
    ("", "empty input"),
    ("   \n\n", "empty input"),
    (None, "no input"),
    (b"\x00\x01\x02\xff", "input contains control characters (binary?)"),
    ("hello world", "unrecognised DRBD output: 'hello world'"),
    (12, "input is int, not text"),
])
def test_unreadable_input_gives_problem(raw, problem):
    result = parse_drbd(raw)
    assert result == [] and problem in result.problems and result.severity == WARN


def test_bytes_and_crlf_are_accepted(read_fixture):
    text = read_fixture("drbd84-proc-syncing.txt").replace("\n", "\r\n").encode()
    (res,) = parse_drbd(text)
    assert res.peer.done == 0.4 and parse_drbd(text).problems == []


def test_garbled_lines_are_named_in_problems():
    proc = parse_drbd("version: 8.4.6 (api:1/proto:86-101)\n 0: cs:Connected ro:Primary/Secondary "
                      "ds:UpToDate/UpToDate C r-----\n    ns:0 nr:0 oos:0\n\t%%% what is this\n")
    assert [r.minor for r in proc] == [0] and proc[0].severity == OK
    assert proc.problems == ["line 4: not understood: '%%% what is this'"]
    status = parse_drbd("r0 role:Secondary\n  disk:UpToDate\nrubbish here\n  disk:Failed\n"
                        "r1 role:Primary\n  disk:UpToDate\n")
    assert [(r.name, r.disk) for r in status] == [("r0", "UpToDate"), ("r1", "UpToDate")]
    assert status.problems == ["line 3: not a resource line: 'rubbish here'"]
