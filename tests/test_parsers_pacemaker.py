"""Pacemaker parsers against the captured crm_mon / pcs / crm_simulate / crm_resource outputs."""

from __future__ import annotations

import pytest

from hatui.collectors.pacemaker import (
    PacemakerStatus,
    parse_crm_mon,
    parse_crm_mon_text,
    parse_crm_resource_locate,
    parse_result_status,
)
from hatui.collectors.severity import Severity

OK, WARN, ALERT = Severity.OK, Severity.WARN, Severity.ALERT


def nodes(st):
    return [(n.name, n.online, n.standby, n.maintenance, n.severity) for n in st.nodes]


def rscs(st):
    return [(r.id, r.role, r.nodes, r.parent, r.severity) for r in st.resources]


# fixture -> (layout, dc, with_quorum, severity, reason)
STATUS_FIXTURES = {
    "crm_mon-2.0.5-basic.xml": ("pacemaker-result", None, True, WARN,  # the whole bundle is down
                                "httpd-bundle-ip-192.168.122.131: Stopped; httpd: Stopped; "
                                "httpd-bundle-docker-0: Stopped; httpd-bundle-0: Stopped; "
                                "httpd-bundle-ip-192.168.122.132: Stopped; httpd-bundle-docker-1: Stopped; "
                                "httpd-bundle-1: Stopped; httpd-bundle-ip-192.168.122.133: Stopped; "
                                "httpd-bundle-docker-2: Stopped; httpd-bundle-2: Stopped"),
    "crm_mon-3x-basic.xml": ("pacemaker-result", "cluster02", True, WARN,
                             "httpd-bundle-ip-192.168.122.133: Stopped; httpd: Stopped; "
                             "httpd-bundle-docker-2: Stopped; httpd-bundle-2: Stopped"),
    "crm_mon-3x-failed-actions.xml": ("pacemaker-result", "cluster02", True, ALERT,
                                      "httpd: failed; dummy-2: failed"),
    "crm_mon-drbd-promotable.xml": ("pacemaker-result", "pcmk-1", True, OK, ""),
    "crm_mon-2.0.5-basic.txt": ("text", "cluster02", True, OK, ""),
    "crm_mon-3x-basic.txt": ("text", "cluster02", True, WARN, "httpd-bundle-2: Stopped"),
    "crm_mon-3x-failed-actions.txt": ("text", "cluster02", True, ALERT, "httpd: failed; dummy-2: failed"),
    "crm_mon-3x-offline-node-maintenance.txt": (
        "text", "cluster02", True, WARN,
        "node cluster02: offline; Fencing: maintenance; rsc1: maintenance; cluster in maintenance mode"),
    "crm_simulate-1.1.18-drbd-masterslave.txt": ("text", None, None, OK, ""),
    "crm_simulate-3x-drbd-promotable.txt": ("text", None, None, OK, ""),
    "pcs-resource-status-3x-drbd-promotable.txt": ("text", None, None, OK, ""),
    "pcs-status-1.1.12-drbd-masterslave.txt": ("text", "pcmk-1", True, OK, ""),
    "pcs-status-1.1.12-node-standby.txt": ("text", "pcmk-1", True, WARN, "node pcmk-1: standby"),
}
OTHER_FIXTURES = {"crm_resource-locate-promotable.xml", "crm_resource-move-node.xml",
                  "crm_resource-move-ban-clear.txt"}
NOT_STATUS = {"crm_standby-query-set-delete.txt"}  # crm_standby -G/-v/-D answers: no state to parse
COVERED = set(STATUS_FIXTURES) | OTHER_FIXTURES | NOT_STATUS


@pytest.mark.parametrize("name", sorted(STATUS_FIXTURES))
def test_status_fixture_summary(name, read_fixture):
    st = parse_crm_mon(read_fixture(name))
    assert isinstance(st, PacemakerStatus) and st.problems == []
    assert (st.layout, st.dc, st.with_quorum, st.severity, st.reason) == STATUS_FIXTURES[name]


def test_crm_mon_3x_basic_xml(read_fixture):
    st = parse_crm_mon(read_fixture("crm_mon-3x-basic.xml"))
    assert (st.api_version, st.status_code, st.status_message, st.stack) == ("X", 0, "OK", "corosync")
    assert (st.maintenance_mode, st.stonith_enabled) == (False, True)
    assert nodes(st) == [("cluster01", True, False, False, OK), ("cluster02", True, False, False, OK),
                         ("httpd-bundle-0", True, False, False, OK), ("httpd-bundle-1", True, False, False, OK),
                         ("httpd-bundle-2", False, False, False, OK)]  # a guest node, not a member
    assert st.node("cluster02").is_dc and st.node("httpd-bundle-2").type == "remote"
    assert len(st.resources) == 32
    assert [(r.role, r.nodes, r.promotable) for r in st.resources_of("promotable-clone")] == [
        ("Promoted", ["cluster02"], True), ("Unpromoted", ["cluster01"], True),
        ("Stopped", [], True), ("Stopped", [], True), ("Stopped", [], True)]
    assert st.promoted_nodes("promotable-clone") == ["cluster02"]
    mysql = st.resources_of("mysql-clone-group")
    assert [r.parents for r in mysql] == [["mysql-clone-group", f"mysql-group:{i}"] for i in range(5)]
    assert {r.parent_kind for r in mysql} == {"clone"} and mysql[0].agent == "lsb:mysql-proxy"
    inactive = st.resources_of("inactive-group")
    assert [(r.id, r.role, r.disabled, r.severity) for r in inactive] == [
        ("inactive-dummy-1", "Stopped", True, OK), ("inactive-dummy-2", "Stopped", True, OK)]
    bundle = st.resources_of("httpd-bundle")
    assert len(bundle) == 12 and bundle[1].nodes == ["httpd-bundle-0"] and bundle[0].agent == "ocf:heartbeat:IPaddr2"
    ex = st.resources_of("exim-group")
    assert [(r.id, r.agent, r.role, r.nodes) for r in ex] == [
        ("Public-IP", "ocf:heartbeat:IPaddr", "Started", ["cluster02"]),
        ("Email", "lsb:exim", "Started", ["cluster02"])]
    assert [(b.id, b.resource, b.node, b.weight, b.promoted_only) for b in st.bans] == [
        ("not-on-cluster1", "dummy", "cluster01", "-1000000", False)]


def test_crm_mon_205_agents_are_normalised(read_fixture):
    st = parse_crm_mon(read_fixture("crm_mon-2.0.5-basic.xml"))
    dummy = st.resources_of("dummy")[0]
    assert (dummy.agent, dummy.role, dummy.nodes, dummy.parent) == ("ocf:pacemaker:Dummy", "Started", ["cluster02"], None)
    assert [n.name for n in st.nodes if n.online] == ["cluster01", "cluster02"]
    assert st.node("httpd-bundle-0").reason == "offline" and st.node("httpd-bundle-0").severity == OK
    assert st.version is None  # blanked by the test harness
    assert st.bans[0].promoted_only is False  # master_only in 2.0.x


def test_crm_mon_failed_actions_xml(read_fixture):
    st = parse_crm_mon(read_fixture("crm_mon-3x-failed-actions.xml"))
    failed = [(r.id, r.parent, r.nodes) for r in st.resources if r.failed]
    assert failed == [("httpd", "httpd-bundle", ["httpd-bundle-1"]), ("dummy-2", "partially-active-group", ["cluster02"])]
    (f,) = st.failures
    assert (f.op_key, f.resource, f.node, f.exitstatus, f.exitcode, f.call, f.status, f.task, f.interval) == (
        "dummy-2_monitor_0", "dummy-2", "cluster02", "Unimplemented", 3, "2", "Done", "monitor", "0")
    group = st.resources_of("partially-active-group")
    assert [(r.id, r.role, r.severity) for r in group] == [
        ("dummy-1", "Started", OK), ("dummy-2", "Started", ALERT),
        ("dummy-3", "Stopped", OK),  # target-role Stopped
        ("dummy-4", "Stopped", WARN)]
    smart = st.resources_of("smart-mon")[0]
    assert (smart.role, smart.severity, smart.reason) == ("Stopped", WARN, "Stopped")
    ping = st.resources_of("ping-clone")
    assert [(r.role, r.severity) for r in ping] == [("Started", OK), ("Stopped", OK)]  # spare clone instance


def test_crm_mon_drbd_promotable(read_fixture):
    st = parse_crm_mon(read_fixture("crm_mon-drbd-promotable.xml"))
    assert st.version == "2.1.6-6fdc9deea29" and st.api_version == "2.30"
    assert rscs(st) == [
        ("fence_pcmk", "Started", ["pcmk-1"], None, OK), ("ClusterIP", "Started", ["pcmk-1"], None, OK),
        ("WebSite", "Started", ["pcmk-1"], None, OK),
        ("WebData", "Promoted", ["pcmk-1"], "WebData-clone", OK),
        ("WebData", "Unpromoted", ["pcmk-2"], "WebData-clone", OK),
        ("WebFS", "Started", ["pcmk-1"], None, OK)]
    assert st.resources_of("WebData")[0].agent == "ocf:linbit:drbd"
    assert st.promoted_nodes("WebData-clone") == ["pcmk-1"]
    two = read_fixture("crm_mon-drbd-promotable.xml").replace('role="Unpromoted"', 'role="Promoted"')
    both = parse_crm_mon(two)
    assert (both.severity, both.reason) == (ALERT, "WebData-clone: 2 Promoted instances")


CRM_MON_11 = """<?xml version="1.0"?>
<crm_mon version="1.1.18">
    <summary>
        <stack type="corosync" />
        <current_dc present="true" version="1.1.18-2b07d5c5a9" name="pcmk-1" id="1" with_quorum="true" />
        <nodes_configured number="3" />
        <resources_configured number="4" disabled="0" blocked="0" />
        <cluster_options stonith-enabled="true" symmetric-cluster="true" no-quorum-policy="stop" maintenance-mode="false" />
    </summary>
    <nodes>
        <node name="pcmk-1" id="1" online="true" standby="false" standby_onfail="false" maintenance="false" pending="false" unclean="false" shutdown="false" expected_up="true" is_dc="true" resources_running="2" type="member" />
        <node name="pcmk-2" id="2" online="true" standby="true" standby_onfail="false" maintenance="false" pending="false" unclean="false" shutdown="false" expected_up="true" is_dc="false" resources_running="1" type="member" />
        <node name="pcmk-3" id="3" online="false" standby="false" standby_onfail="false" maintenance="false" pending="false" unclean="true" shutdown="false" expected_up="true" is_dc="false" resources_running="0" type="member" />
    </nodes>
    <resources>
        <clone id="ms_drbd" multi_state="true" unique="false" managed="true" failed="false" failure_ignored="false" >
            <resource id="p_drbd" resource_agent="ocf::linbit:drbd" role="Master" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1" >
                <node name="pcmk-1" id="1" cached="false"/>
            </resource>
            <resource id="p_drbd" resource_agent="ocf::linbit:drbd" role="Slave" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1" >
                <node name="pcmk-2" id="2" cached="false"/>
            </resource>
        </clone>
        <group id="g_web" number_resources="2" >
            <resource id="p_fs" resource_agent="ocf::heartbeat:Filesystem" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="true" failure_ignored="false" nodes_running_on="1" >
                <node name="pcmk-1" id="1" cached="false"/>
            </resource>
            <resource id="p_ip" resource_agent="ocf::heartbeat:IPaddr2" role="Stopped" active="false" orphaned="false" blocked="false" managed="false" failed="false" failure_ignored="false" nodes_running_on="0" />
        </group>
    </resources>
    <failures>
        <failure op_key="p_fs_start_0" node="pcmk-1" exitstatus="unknown error" exitcode="1" call="32" status="complete" last-rc-change="Mon Jan  8 09:58:00 2018" queued="0" exec="120" interval="0" task="start" />
    </failures>
</crm_mon>
"""


def test_crm_mon_11_as_xml_layout():
    st = parse_crm_mon(CRM_MON_11)
    assert (st.layout, st.version, st.dc, st.status_code, st.problems) == ("crm_mon", "1.1.18", "pcmk-1", None, [])
    assert nodes(st) == [("pcmk-1", True, False, False, OK), ("pcmk-2", True, True, False, WARN),
                         ("pcmk-3", False, False, False, ALERT)]
    assert st.node("pcmk-3").reason == "unclean"  # the worst finding's reasons only
    assert [(r.id, r.role, r.raw_role, r.agent, r.nodes, r.parent) for r in st.resources] == [
        ("p_drbd", "Promoted", "Master", "ocf:linbit:drbd", ["pcmk-1"], "ms_drbd"),
        ("p_drbd", "Unpromoted", "Slave", "ocf:linbit:drbd", ["pcmk-2"], "ms_drbd"),
        ("p_fs", "Started", "Started", "ocf:heartbeat:Filesystem", ["pcmk-1"], "g_web"),
        ("p_ip", "Stopped", "Stopped", "ocf:heartbeat:IPaddr2", [], "g_web")]
    assert st.resources[3].reason == "unmanaged; Stopped"
    (f,) = st.failures
    assert (f.op_key, f.exitcode, f.last_rc_change) == ("p_fs_start_0", 1, "Mon Jan  8 09:58:00 2018")
    assert st.severity == ALERT
    assert st.reason == "node pcmk-3: unclean; p_fs: failed"


# --- text layouts --------------------------------------------------------------------------------

def test_text_pcs_standby(read_fixture):
    st = parse_crm_mon(read_fixture("pcs-status-1.1.12-node-standby.txt"))
    assert (st.stack, st.version) == ("corosync", "1.1.12-a14efad")
    assert nodes(st) == [("pcmk-1", True, True, False, WARN), ("pcmk-2", True, None, None, OK)]
    assert rscs(st) == [
        ("ClusterIP", "Started", ["pcmk-2"], None, OK), ("WebSite", "Started", ["pcmk-2"], None, OK),
        ("WebData", "Promoted", ["pcmk-2"], "WebDataClone", OK),
        ("WebData", "Stopped", [], "WebDataClone", OK),
        ("WebFS", "Started", ["pcmk-2"], None, OK)]
    assert st.resources[0].agent == "ocf:heartbeat:IPaddr2"


def test_text_pcs_masterslave_and_resource_status(read_fixture):
    st = parse_crm_mon(read_fixture("pcs-status-1.1.12-drbd-masterslave.txt"))
    assert st.promoted_nodes("WebDataClone") == ["pcmk-1"]
    assert [(r.role, r.raw_role, r.nodes) for r in st.resources_of("WebDataClone")] == [
        ("Promoted", "Masters", ["pcmk-1"]), ("Unpromoted", "Slaves", ["pcmk-2"])]
    assert [n.name for n in st.nodes] == ["pcmk-1", "pcmk-2"]  # "PCSD Status" lines ignored
    rs = parse_crm_mon(read_fixture("pcs-resource-status-3x-drbd-promotable.txt"))
    assert rscs(rs) == [
        ("ClusterIP", "Started", ["pcmk-2"], None, OK), ("WebSite", "Started", ["pcmk-2"], None, OK),
        ("WebData", "Promoted", ["pcmk-2"], "WebData-clone", OK),
        ("WebData", "Unpromoted", ["pcmk-1"], "WebData-clone", OK),
        ("WebFS", "Started", ["pcmk-2"], None, OK)]
    assert rs.nodes == [] and all(r.promotable for r in rs.resources_of("WebData-clone"))


@pytest.mark.parametrize("name", ["crm_simulate-1.1.18-drbd-masterslave.txt", "crm_simulate-3x-drbd-promotable.txt"])
def test_text_crm_simulate(name, read_fixture):
    st = parse_crm_mon_text(read_fixture(name))
    assert [n.name for n in st.nodes] == ["arc-dknightlx", "arc-tkincaidlx.wsicorp.com"]
    assert rscs(st) == [
        ("rsc_drbd_7788", "Promoted", ["arc-tkincaidlx.wsicorp.com"], "ms_drbd_7788", OK),
        ("rsc_drbd_7788", "Unpromoted", ["arc-dknightlx"], "ms_drbd_7788", OK),
        ("fs_mirror", "Started", ["arc-tkincaidlx.wsicorp.com"], "grp_pgsql_mirror", OK),
        ("pgsql_5555", "Started", ["arc-tkincaidlx.wsicorp.com"], "grp_pgsql_mirror", OK),
        ("IPaddr_147_81_84_133", "Started", ["arc-tkincaidlx.wsicorp.com"], "grp_pgsql_mirror", OK)]
    assert st.resources[2].agent == "ocf:heartbeat:Filesystem"


def test_text_3x(read_fixture):
    basic = parse_crm_mon(read_fixture("crm_mon-3x-basic.txt"))
    assert [(n.name, n.type) for n in basic.nodes] == [
        ("cluster01", "member"), ("cluster02", "member"), ("httpd-bundle-0", "remote"), ("httpd-bundle-1", "remote")]
    assert basic.promoted_nodes("promotable-clone") == ["cluster02"]
    assert [(r.id, r.nodes) for r in basic.resources_of("httpd-bundle")] == [
        ("httpd-bundle-0", ["cluster01"]), ("httpd-bundle-1", ["cluster02"]), ("httpd-bundle-2", [])]
    failed = parse_crm_mon(read_fixture("crm_mon-3x-failed-actions.txt"))
    assert [(r.id, r.nodes, r.parent) for r in failed.resources if r.failed] == [
        ("httpd", ["httpd-bundle-1"], "httpd-bundle"), ("dummy-2", ["cluster02"], "partially-active-group")]
    ping = failed.resources_of("ping-clone")
    assert [(r.role, r.nodes) for r in ping] == [("Started", ["cluster01"]), ("Stopped", [])]
    maint = parse_crm_mon(read_fixture("crm_mon-3x-offline-node-maintenance.txt"))
    assert nodes(maint) == [("cluster01", True, None, None, OK), ("cluster02", False, None, None, WARN)]
    assert maint.maintenance_mode is True
    assert [(r.id, r.maintenance) for r in maint.resources] == [("Fencing", True), ("rsc1", True)]
    old = parse_crm_mon(read_fixture("crm_mon-2.0.5-basic.txt"))
    assert [r.agent for r in old.resources if r.agent] == [
        "stonith:fence_xvm", "ocf:pacemaker:Dummy", "ocf:heartbeat:IPaddr", "lsb:exim"]


def test_text_node_states_and_failed_actions():
    text = ("Current DC: NONE\n"
            "Node List:\n  * Node n1: UNCLEAN (offline)\n  * Node n2: standby (with active resources)\n"
            "  * Node n3: maintenance\n\n"
            "Full List of Resources:\n  * vip\t(ocf:heartbeat:IPaddr2):\t FAILED n2 (blocked)\n"
            "  * web\t(lsb:nginx):\t Started n2 (unmanaged)\n"
            "  * off\t(lsb:x):\t Stopped (disabled)\n\n"
            "Failed Resource Actions:\n"
            "  * vip_start_0 on n2 'error' (1): call=5, status='complete', exitreason='', last-rc-change=''\n")
    st = parse_crm_mon_text(text)
    assert st.dc is None
    assert [(n.name, n.online, n.unclean, n.standby, n.maintenance, n.severity) for n in st.nodes] == [
        ("n1", False, True, False, False, ALERT), ("n2", True, False, True, False, WARN),
        ("n3", True, False, False, True, WARN)]
    assert [(r.id, r.role, r.failed, r.blocked, r.managed, r.disabled, r.severity) for r in st.resources] == [
        ("vip", "Started", True, True, None, False, ALERT), ("web", "Started", False, None, False, False, WARN),
        ("off", "Stopped", False, None, None, True, OK)]
    (f,) = st.failures
    assert (f.op_key, f.node, f.exitstatus, f.exitcode) == ("vip_start_0", "n2", "error", 1)
    assert st.severity == ALERT


# --- safety and garbage --------------------------------------------------------------------------

def test_doctype_and_entities_are_refused():
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
            '<crm_mon version="1.1"><nodes><node name="&lol2;"/></nodes></crm_mon>')
    st = parse_crm_mon(bomb)
    assert st.nodes == [] and st.problems == ["XML with DOCTYPE/ENTITY declarations refused"]
    assert st.severity == WARN


@pytest.mark.parametrize("text, problem", [
    ("", "empty input"),
    ("<pacemaker-result><nodes>", "XML parse error: no element found: line 1, column 25"),
    ("<html><body>nope</body></html>", "not crm_mon XML (root <html>)"),
    ("random words", "no Pacemaker status found: 'random words'"),
    (b"\x89PNG\r\n\x1a\n\x00", "input contains control characters (binary?)"),
])
def test_unreadable_input(text, problem):
    st = parse_crm_mon(text)
    assert problem in st.problems and st.severity == WARN and st.resources == []


def test_truncated_fixture_and_stderr_noise(read_fixture):
    text = read_fixture("crm_mon-3x-basic.xml")
    truncated = parse_crm_mon(text[: len(text) // 2])
    assert truncated.problems[0].startswith("XML parse error") and truncated.nodes == []
    noisy = parse_crm_mon("crm_mon: warning: something\n" + text)
    assert noisy.problems == [] and len(noisy.resources) == 32


def test_status_code_and_disconnected():
    st = parse_crm_mon('<pacemaker-result api-version="2.3" request="crm_mon">'
                       '<crm-mon-disconnected description="Error: cluster is not available on this node" '
                       'pacemakerd-state="shutting_down"/>'
                       '<status code="102" message="Not connected"/></pacemaker-result>')
    assert (st.status_code, st.status_message) == (102, "Not connected")
    assert st.disconnected == "Error: cluster is not available on this node"
    assert st.problems == ["crm_mon status 102: Not connected",
                           "crm_mon disconnected: Error: cluster is not available on this node"]
    assert st.severity == ALERT


# --- other tools ---------------------------------------------------------------------------------

def test_crm_resource_locate(read_fixture):
    xml = parse_crm_resource_locate(read_fixture("crm_resource-locate-promotable.xml"))
    assert [(x.resource, x.node, x.role) for x in xml] == [
        ("promotable-clone", "cluster01", None), ("promotable-clone", "cluster02", "Promoted")]
    text = parse_crm_resource_locate(read_fixture("crm_resource-move-ban-clear.txt"))
    assert [(x.resource, x.node, x.role) for x in text] == [
        ("promotable-clone", "cluster01", None), ("promotable-clone", "cluster02", "Promoted")]
    assert text.problems == [] and xml.problems == []
    assert parse_crm_resource_locate("resource dummy is NOT running\n") == []
    assert parse_crm_resource_locate("resource dummy is NOT running\n").problems == []
    assert parse_crm_resource_locate("gibberish").problems == ["no location found"]


def test_crm_resource_move_and_other_outputs_are_not_status(read_fixture):
    moved = parse_result_status(read_fixture("crm_resource-move-node.xml"))
    assert (moved.code, moved.message, moved.ok, moved.problems) == (0, "OK", True, [])
    assert moved.request == "crm_resource -r dummy -M -N node1 --output-as=xml"
    st = parse_crm_mon(read_fixture("crm_resource-move-node.xml"))  # a result without a status body
    assert (st.layout, st.status_code, st.nodes, st.resources) == ("pacemaker-result", 0, [], [])
    for name in ("crm_resource-move-ban-clear.txt", "crm_standby-query-set-delete.txt"):
        other = parse_crm_mon(read_fixture(name))
        assert other.problems and other.problems[0].startswith("no Pacemaker status found")
    assert parse_result_status("<x/>").problems == ["no <status> element"]


def test_xml_with_trailing_noise_and_disabled_clone(read_fixture):
    st = parse_crm_mon(read_fixture("crm_mon-drbd-promotable.xml") + "\ncrm_mon: done\n")
    assert st.problems == [] and len(st.resources) == 6
    text = parse_crm_mon_text("  * Clone Set: c [r]:\n    * Stopped (disabled): [ a b ]\n")
    assert [(r.id, r.role, r.disabled, r.severity) for r in text.resources] == [
        ("r", "Stopped", True, OK), ("r", "Stopped", True, OK)]
