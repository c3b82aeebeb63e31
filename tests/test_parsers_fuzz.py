"""Every parser, fed random text, binary garbage and mutated fixtures: nothing escapes, types hold.

Also the guard that every file in tests/fixtures is covered by some parser test.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hatui.collectors import drbd, drbd_log, heartbeat, pacemaker
from hatui.collectors.severity import ResultList, Severity
from tests.test_parsers_drbd import COVERED as DRBD_COVERED
from tests.test_parsers_heartbeat import COVERED as HEARTBEAT_COVERED
from tests.test_parsers_pacemaker import COVERED as PACEMAKER_COVERED

# Files in tests/fixtures that are not tool outputs at all.
NOT_A_FIXTURE = {"README.md"}
# Captured outputs read by other parsers' tests (httperf: tests/test_trusted_numbers.py).
OTHER_PARSERS = {"httperf-last-connection-timed-out.txt"}

# parser -> the type it must return, whatever the input
PARSERS = {
    drbd.parse_drbd: (ResultList, drbd.DrbdResource),
    drbd_log.parse_drbd_kernel_log: (ResultList, drbd_log.DrbdLogEvent),
    drbd_log.parse_drbdadm_errors: (ResultList, drbd_log.DrbdCommandError),
    heartbeat.parse_hbstatus: (heartbeat.HbStatus, None),
    heartbeat.parse_nodestatus: (heartbeat.HbValue, None),
    heartbeat.parse_rscstatus: (heartbeat.HbValue, None),
    heartbeat.parse_ha_cf: (heartbeat.HaCf, None),
    heartbeat.parse_haresources: (ResultList, heartbeat.HaResourceGroup),
    heartbeat.parse_heartbeat_log: (ResultList, heartbeat.HbLogEvent),
    pacemaker.parse_crm_mon: (pacemaker.PacemakerStatus, None),
    pacemaker.parse_crm_mon_text: (pacemaker.PacemakerStatus, None),
    pacemaker.parse_crm_resource_locate: (ResultList, pacemaker.ResourceLocation),
    pacemaker.parse_result_status: (pacemaker.PcmkResult, None),
}

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_value(obj, path="result"):
    """Walk a parsed value: severities are Severity, reasons str, problems list[str], floats finite."""
    if isinstance(obj, ResultList):
        assert isinstance(obj.problems, list) and all(isinstance(p, str) for p in obj.problems), path
        assert isinstance(obj.severity, Severity) and isinstance(obj.reason, str), path
    if isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            check_value(item, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for key, item in obj.items():
            check_value(item, f"{path}[{key!r}]")
    elif dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.name == "severity":
                assert isinstance(value, Severity), f"{path}.severity"
            elif f.name == "reason":
                assert isinstance(value, str), f"{path}.{f.name}"
            elif f.name == "problems":
                assert isinstance(value, list) and all(isinstance(p, str) for p in value), f"{path}.problems"
            check_value(value, f"{path}.{f.name}")
        dataclasses.asdict(obj)  # the cluster view serialises these
    elif isinstance(obj, float):
        assert math.isfinite(obj), path


def run_all(raw):
    for parser, (kind, item_kind) in PARSERS.items():
        result = parser(raw)
        assert isinstance(result, kind), parser.__name__
        if item_kind is not None:
            assert all(isinstance(item, item_kind) for item in result), parser.__name__
        check_value(result, parser.__name__)
        if kind is not ResultList:
            assert isinstance(result.problems, list), parser.__name__


# --- coverage of the fixtures --------------------------------------------------------------------

def test_every_fixture_is_covered(fixtures_dir):
    present = {p.name for p in fixtures_dir.iterdir() if p.is_file()}
    covered = DRBD_COVERED | HEARTBEAT_COVERED | PACEMAKER_COVERED
    assert present - covered - NOT_A_FIXTURE - OTHER_PARSERS == set(), "new fixture files without a parser test"
    assert covered - present == set(), "tests name fixture files that do not exist"
    assert not (DRBD_COVERED & HEARTBEAT_COVERED or DRBD_COVERED & PACEMAKER_COVERED
                or HEARTBEAT_COVERED & PACEMAKER_COVERED)


def _fixture_texts(fixtures_dir, read_fixture):
    return [read_fixture(p.name) for p in sorted(fixtures_dir.iterdir())
            if p.is_file() and p.name not in NOT_A_FIXTURE]


def test_every_parser_on_every_fixture(fixtures_dir, read_fixture):
    """Each fixture through every parser (wrong formats included): no exception, types hold."""
    for text in _fixture_texts(fixtures_dir, read_fixture):
        run_all(text)


# --- hypothesis ----------------------------------------------------------------------------------

@FUZZ
@given(st.text(max_size=2000))
def test_random_text(text):
    run_all(text)


@FUZZ
@given(st.binary(max_size=2000))
def test_binary_garbage(blob):
    run_all(blob)
    run_all(blob.decode("latin-1"))


TOKENS = [
    # /proc/drbd, status, events2
    "version:", "8.4.6", "(api:1/proto:86-101)", "0:", " 1:", "cs:Connected", "cs:SyncSource", "cs:",
    "ro:Primary/Secondary", "st:", "ds:UpToDate/Inconsistent", "ds:/", "C", "r-----", "ns:0", "oos:12",
    "[=>...]", "sync'ed:", "verified:", "47.3%", "(553096/1048508)K", "(1/2)M", "finish:", "0:10:53",
    "speed:", "1,436", "K/sec", "role:Primary", "role:", "disk:UpToDate", "peer-disk:Diskless",
    "replication:SyncTarget", "done:0.08", "done:nan", "eta:nan", "volume:1", "minor:9", "node-id:x",
    "connection:Connecting", "out-of-sync:-5", "exists", "create", "change", "destroy", "rename",
    "call", "response", "resource", "device", "connection", "peer-device", "path", "helper", "-",
    "name:r0", "new_name:r1", "peer-node-id:1", "conn-name:b", "helper:split-brain", "UNKNOWN->No",
    "TIME", "\x1b[1;31m", "^[[0m", "{", "}", "[", "]", '"name":', '"devices":', "null", "1e999",
    # heartbeat
    "Heartbeat is running on this machine.", "version:\t", "managed by:", "ccm membership",
    "(nodetype: ping)", "(born: 3)", "member of partition", "keepalive", "deadtime", "500ms", "1.5",
    "ucast", "mcast", "node", "crm", "auto_failback", "::", "\\", "#", "Taking over resource group",
    "heartbeat[1]:", "May 9 12:10:40 gw2 heartbeat: [1]: info:", "is dead", "Link a:eth0 dead.",
    # pacemaker
    "<crm_mon version='1'>", "<pacemaker-result>", "<resources>", "<clone id='c' multi_state='true'>",
    "<group id='g'>", "<bundle id='b'>", "<replica id='0'>", "<resource id='r' role='Master'>",
    "<node name='n' online='false' unclean='true'/>", "</resource>", "</clone>", "<status code='x'/>",
    "<failures><failure/></failures>", "<!DOCTYPE x>", "Online: [ a b ]", "Node a (1): standby",
    "Clone Set: c [r] (promotable):", "Promoted: [ a ]", "Masters: [", "r\t(ocf::x:y):\t FAILED a",
    "Failed Resource Actions:", "* op_0 on n 'e' (1): call=1", "resource r is running on: a Promoted",
    # numbers too big for int()/float() (Python refuses > 4300 digits), odd digits
    "1" * 4400, "9" * 400, "1e400", "-0", "0x1f", "\u00b2", "\u0663",
]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["", " ", "  ", "    ", "\t", "        "]),
                          st.lists(st.sampled_from(TOKENS) | st.text(max_size=6), max_size=8)),
                max_size=25))
def test_token_soup(lines):
    """Lines made of the formats' own words, so the fuzzing reaches deep into each parser."""
    run_all("\n".join(indent + " ".join(words) for indent, words in lines))


def _mutate(data, text: str) -> str:
    ops = data.draw(st.lists(st.sampled_from(["truncate", "cut", "dup", "insert", "swap", "flip"]),
                             min_size=1, max_size=4))
    for op in ops:
        n = len(text)
        i = data.draw(st.integers(0, n))
        j = data.draw(st.integers(i, n))
        if op == "truncate":
            text = text[:i]
        elif op == "cut":
            text = text[:i] + text[j:]
        elif op == "dup":
            text = text[:j] + text[i:j] + text[j:]
        elif op == "insert":
            text = text[:i] + data.draw(st.sampled_from(TOKENS) | st.text(max_size=20)) + text[i:]
        elif op == "swap":
            lines = text.split("\n")
            a = data.draw(st.integers(0, len(lines) - 1))
            b = data.draw(st.integers(0, len(lines) - 1))
            lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
        elif op == "flip" and n:
            k = min(i, n - 1)
            text = text[:k] + chr((ord(text[k]) + data.draw(st.integers(1, 300))) % 0x10FFFF) + text[k + 1:]
    return text


@FUZZ
@given(data=st.data())
def test_mutated_fixtures(data, fixtures_dir, read_fixture):
    texts = _fixture_texts(fixtures_dir, read_fixture)
    text = data.draw(st.sampled_from(texts))
    run_all(_mutate(data, text))


# --- the guards themselves -----------------------------------------------------------------------

@pytest.mark.parametrize("module, target, call", [
    (drbd, "_detect", lambda: drbd.parse_drbd("x")),
    (drbd_log, "_event", lambda: drbd_log.parse_drbd_kernel_log("[1.0] block drbd0: hi")),
    (drbd_log, "_FAILURE", lambda: drbd_log.parse_drbdadm_errors("0: Failure: (1) x")),
    (heartbeat, "_one_word", lambda: heartbeat.parse_nodestatus("up")),
    (heartbeat, "_parse_node_blocks", lambda: heartbeat.parse_hbstatus("a\tup\t(nodetype: normal)")),
    (heartbeat, "_ha_cf_checks", lambda: heartbeat.parse_ha_cf("keepalive 1")),
    (pacemaker, "_parse_xml", lambda: pacemaker.parse_crm_mon("<crm_mon/>")),
    (pacemaker, "_parse_text", lambda: pacemaker.parse_crm_mon_text("Online: [ a ]")),
    (pacemaker, "_load_xml", lambda: pacemaker.parse_result_status("<x/>")),
    (pacemaker, "_LOCATE", lambda: pacemaker.parse_crm_resource_locate("resource r is running on: a")),
])
def test_internal_errors_become_problems(monkeypatch, module, target, call):
    class Boom:
        def __call__(self, *a, **k):
            raise RuntimeError("boom")

        def __getattr__(self, name):  # compiled regexes: .match/.search raise too
            return self

    monkeypatch.setattr(module, target, Boom())
    result = call()
    assert "internal parser error: RuntimeError: boom" in result.problems
    assert getattr(result, "severity", Severity.WARN) == Severity.WARN
