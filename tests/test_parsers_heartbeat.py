"""Heartbeat parsers (cl_status, ha.cf, haresources, logs) against the captured outputs."""

from __future__ import annotations

import pytest

from hatui.collectors import heartbeat as hb
from hatui.collectors.severity import Severity

OK, WARN, ALERT = Severity.OK, Severity.WARN, Severity.ALERT

# one-word answers: fixture -> (parser, [(word, severity)] one per line = one invocation)
ONE_WORD_FIXTURES = {
    "cl_status-nodestatus.txt": (hb.parse_nodestatus, [("active", OK), ("dead", ALERT), ("up", OK), ("ping", OK)]),
    "cl_status-rscstatus.txt": (hb.parse_rscstatus, [("all", OK), ("local", OK), ("foreign", OK),
                                                     ("none", OK), ("transition", WARN)]),
}
HBSTATUS_FIXTURES = {  # fixture -> expected state per line (alternative outputs) or whole file
    "cl_status-hbstatus-running.txt": [("running", OK)],
    "cl_status-hbstatus-stopped.txt": [("stopped", ALERT)],
    "cl_status-hbstatus-refused.txt": [("refused", WARN)],
    "heartbeat-init-status.txt": [("running", OK), ("stopped", ALERT)],
}
OTHER_FIXTURES = {"cl_status-hbstatus-verbose.txt", "ha.cf-drbd-ug84", "ha.cf-serverfault-ucast-stonith", "haresources-examples",
                  "heartbeat-log-takeover-shutdown-notice.log", "heartbeat-log-lab-3.0.6.log"}
COVERED = set(ONE_WORD_FIXTURES) | set(HBSTATUS_FIXTURES) | OTHER_FIXTURES


# --- cl_status -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ONE_WORD_FIXTURES))
def test_one_word_fixtures(name, read_fixture):
    parser, expected = ONE_WORD_FIXTURES[name]
    lines = [ln for ln in read_fixture(name).split("\n") if ln.strip()]
    got = [parser(ln) for ln in lines]
    assert [(v.value, v.severity) for v in got] == expected
    assert all(v.problems == [] for v in got)
    whole = parser(read_fixture(name))  # several invocations glued together: first wins, noted
    assert whole.value == expected[0][0]
    assert whole.problems == [f"{len(expected) - 1} extra line(s) after the {parser.__name__[6:]} answer"]


@pytest.mark.parametrize("name", sorted(HBSTATUS_FIXTURES))
def test_hbstatus_fixtures(name, read_fixture):
    lines = [ln for ln in read_fixture(name).split("\n") if ln.strip()]
    got = [hb.parse_hbstatus(ln) for ln in lines]
    assert [(s.state, s.severity) for s in got] == HBSTATUS_FIXTURES[name]
    assert all(s.problems == [] for s in got)


def test_heartbeat_init_status_pid(read_fixture):
    running = hb.parse_hbstatus(read_fixture("heartbeat-init-status.txt").split("\n")[0])
    assert running.pid == 3684


@pytest.mark.parametrize("tabs", [False, True])
def test_hbstatus_verbose(tabs, read_fixture):
    text = read_fixture("cl_status-hbstatus-verbose.txt")
    if tabs:  # the real output has TABs where the man page shows spaces
        text = "\n".join(ln.replace("        ", "\t") for ln in text.split("\n"))
    st = hb.parse_hbstatus(text)
    assert (st.state, st.version, st.managed_by, st.pacemaker_mode) == ("running", "3.0.6 (10e3f2130ea1)", "pacemaker", "respawn")
    assert (st.ccm, st.ccm_instance, st.member_of_partition) == ("with quorum", 12, True)
    assert [(m.node_id, m.name, m.born) for m in st.members] == [(1, "bob", 6), (0, "alice", 12)]
    assert [(n.name, n.status, n.nodetype, n.links) for n in st.nodes] == [
        ("bob", "active", "normal", {"eth1": "dead", "eth0": "up"}),
        ("alice", "active", "normal", {"eth1": "dead", "eth0": "up"}),
        ("10.43.9.55", "ping", "ping", {"10.43.9.55": "up"})]
    assert [n.severity for n in st.nodes] == [WARN, WARN, OK]
    assert (st.severity, st.reason) == (WARN, "bob: link eth1 dead; alice: link eth1 dead")
    assert st.problems == []


def test_hbstatus_human_and_refused_reason():
    st = hb.parse_hbstatus('Heartbeat version 3.0.6\nResources controlled by "haresources"\n')
    assert (st.state, st.version, st.managed_by) == ("running", "3.0.6", "haresources")
    refused = hb.parse_hbstatus("Heartbeat is apparently running on this machine, but refuses my connection\n"
                                "(Permission denied)\n")
    assert (refused.state, refused.detail) == ("refused", "Permission denied")
    managed = hb.parse_hbstatus('version:\t3.0.6\nmanaged by:\t"haresources"\n\n'
                                "ccm membership WITHOUT quorum\n\tinstance 3\n\tmembers 1\n"
                                "\t\t0 alice\t(born: 3)\n\tNOT member of partition\n\n"
                                "alice\tactive\t(nodetype: normal)\n\teth0\tup\n\n"
                                "bob\tdead\t(nodetype: normal)\n\teth0\tdead\n")
    assert managed.managed_by == "haresources" and managed.member_of_partition is False
    assert managed.severity == ALERT
    assert managed.reason == "bob: node dead"
    assert [n.status for n in managed.nodes] == ["active", "dead"]


def test_hbstatus_signon_error():
    st = hb.parse_hbstatus("cl_status[123]: ERROR: Cannot signon with heartbeat\ncl_status[123]: ERROR: REASON: hb_api_signon: Can't initiate connection  to heartbeat\n")
    assert st.state == "unknown" and "Cannot signon" in st.detail
    assert st.severity == WARN and st.problems == ["no heartbeat status found"]


def test_one_word_human_forms_and_errors():
    v = hb.parse_nodestatus("The cluster node bob is dead")
    assert (v.subject, v.value, v.severity, v.reason) == ("bob", "dead", ALERT, "nodestatus dead")
    assert hb.parse_rscstatus("This node is holding foreign resources.").value == "foreign"
    weird = hb.parse_nodestatus("sleeping")
    assert (weird.value, weird.severity, weird.reason) == ("sleeping", WARN, "unknown nodestatus 'sleeping'")
    pcmk = hb.parse_rscstatus("cl_status: ERROR: Cannot get cluster resource status of a pacemaker cluster; try crm_mon\n")
    assert pcmk.value is None and pcmk.severity == WARN and pcmk.problems[0].startswith("cl_status error:")
    assert hb.parse_nodestatus("").problems == ["empty input"]
    assert hb.parse_nodestatus("a b c").problems == ["not a nodestatus answer: 'a b c'"]


# --- ha.cf ---------------------------------------------------------------------------------------

def test_ha_cf_drbd_ug(read_fixture):
    cf = hb.parse_ha_cf(read_fixture("ha.cf-drbd-ug84"))
    assert (cf.keepalive_ms, cf.warntime_ms, cf.deadtime_ms, cf.initdead_ms) == (2000, 5000, 15000, 60000)
    assert cf.nodes == ["alice", "bob"] and cf.autojoin == "none"
    assert [(m.kind, m.interface, m.args) for m in cf.media] == [
        ("mcast", "bond0", ["239.0.0.43", "694", "1", "0"]), ("bcast", "eth2", [])]
    assert cf.crm is None and cf.mode == "haresources" and not cf.pacemaker_enabled
    assert cf.auto_failback is None and cf.problems == []
    assert (cf.severity, cf.reason) == (WARN, "auto_failback not set (legacy: no hb_standby/takeover)")
    assert len(cf.directives) == 9


def test_ha_cf_serverfault(read_fixture):
    cf = hb.parse_ha_cf(read_fixture("ha.cf-serverfault-ucast-stonith"))
    assert (cf.keepalive_ms, cf.deadtime_ms, cf.udpport) == (1000, 10000, 695)
    assert [(m.kind, m.interface, m.args) for m in cf.media] == [("ucast", "eth0", ["rad11"])]
    assert cf.nodes == ["rad10", "rad11"] and cf.auto_failback == "on"
    assert cf.logfile == "/var/log/ha-log"
    assert cf.stonith_hosts == ["rad10 meatware rad11", "rad11 meatware rad10"]
    assert (cf.severity, cf.problems) == (OK, [])


@pytest.mark.parametrize("value, ms", [("2", 2000), ("500ms", 500), ("1s", 1000), ("1.5", 1500),
                                       ("100000us", 100), ("0.1", 100), ("abc", None), ("", None)])
def test_time_values(value, ms):
    assert hb.parse_time_ms(value) == ms


def test_ha_cf_lab_like_config_and_checks():
    cf = hb.parse_ha_cf("# lab\nkeepalive 100ms\ndeadtime 500ms  # fast\nwarntime 300ms\ninitdead 2\n"
                        "ucast eth1 10.0.0.2\nnode a b\nauto_failback off\ncrm no\nuse_logd yes\n"
                        "respawn hacluster /usr/lib/heartbeat/ipfail\nping 10.0.0.254\nping_group g 1.1.1.1 2.2.2.2\n"
                        "pacemaker\n")
    assert (cf.keepalive_ms, cf.deadtime_ms, cf.warntime_ms, cf.initdead_ms) == (100, 500, 300, 2000)
    assert cf.crm == "no" and cf.mode == "haresources" and cf.use_logd is True
    assert cf.respawn == [("hacluster", "/usr/lib/heartbeat/ipfail")]
    assert cf.ping_nodes == ["10.0.0.254"] and cf.ping_groups == {"g": ["1.1.1.1", "2.2.2.2"]}
    assert cf.problems == ["line 14: pacemaker without a value"] and cf.severity == WARN
    bad = hb.parse_ha_cf("keepalive 2\ndeadtime 1\ninitdead soon\nnode a\nbcast eth0\nauto_failback on\n")
    assert bad.severity == ALERT and bad.problems == ["line 3: bad time for initdead: 'soon'"]
    assert hb.parse_ha_cf("crm respawn\n").mode == "pacemaker"
    assert hb.parse_ha_cf("").problems == ["no directives found"]


# --- haresources ---------------------------------------------------------------------------------

def test_haresources_examples(read_fixture):
    groups = hb.parse_haresources(read_fixture("haresources-examples"))
    assert groups.problems == []
    assert [(g.node, [r.raw for r in g.resources], g.line) for g in groups] == [
        ("bob", ["drbddisk::mysql", "Filesystem::/dev/drbd0::/var/lib/mysql::ext3", "10.9.42.1", "mysql"], 1),
        ("bob", ["192.168.42.1", "drbdupper::mysql-U", "Filesystem::/dev/drbd1::/var/lib/mysql::ext3", "mysql"], 3),
        ("alice", ["drbddisk::r0", "Filesystem::/dev/drbd0::/local/groups::ext3", "10.0.0.1", "smb"], 6),
        ("bob", ["drbddisk::r1", "Filesystem::/dev/drbd1::/local/ldap::ext3", "10.0.0.2", "ldap"], 7),
        ("just.linux-ha.org", ["135.9.216.3/28/eth0/135.9.216.12", "httpd"], 8),
        ("node1", ["10.0.0.170", "Filesystem::/dev/sda1::/data1::ext2"], 9)]
    first = groups[0]
    assert [(r.agent, r.args) for r in first.resources] == [
        ("drbddisk", ["mysql"]), ("Filesystem", ["/dev/drbd0", "/var/lib/mysql", "ext3"]),
        ("IPaddr", ["10.9.42.1"]), ("mysql", [])]
    assert first.key == "drbddisk::mysql"
    assert (groups[4].resources[0].agent, groups[4].resources[0].args) == ("IPaddr", ["135.9.216.3/28/eth0/135.9.216.12"])


def test_haresources_comments_and_problems():
    groups = hb.parse_haresources("# comment\n\nmaster drbddisk::r0 \\\n  IPaddr2::10.0.0.100/24/eth0 nginx # web\nlonely\n")
    assert [(g.node, [r.raw for r in g.resources]) for g in groups] == [
        ("master", ["drbddisk::r0", "IPaddr2::10.0.0.100/24/eth0", "nginx"])]
    assert groups.problems == ["line 5: node 'lonely' without resources"]
    assert hb.parse_haresources("# only comments\n").problems == ["no resource groups found"]


# --- log -----------------------------------------------------------------------------------------

def test_takeover_log(read_fixture):
    events = hb.parse_heartbeat_log(read_fixture("heartbeat-log-takeover-shutdown-notice.log"))
    assert events.problems == []
    assert [(e.kind, e.node, e.detail) for e in events] == [
        ("shutdown_notice", "gw1", None),
        ("acquiring_from", "gw1", None),
        ("foreign_acquired", None, None),
        ("takeover_complete", "gw1", None),
        ("takeover_complete", None, None),
        ("local_acquisition_complete", None, None),
        ("acquiring_group", "gw2", "IPaddr2::1.2.3.4")]
    first = events[0]
    assert (first.timestamp, first.host, first.program, first.pid, first.level) == (
        "May 9 12:10:40", "gw2", "heartbeat", 3684, "info")
    assert (first.severity, first.reason) == (WARN, "Received shutdown notice from 'gw1'.")
    assert events[3].program == "mach_down" and events[3].pid == 26521
    assert events[-1].program == "ResourceManager"


def test_log_node_dead_and_halog_format():
    text = ("heartbeat[2853]: 2012/05/09_12:10:40 WARN: node gw1: is dead\n"
            "heartbeat[2853]: 2012/05/09_12:10:40 info: Link gw1:eth0 dead.\n"
            "heartbeat[2853]: 2012/05/09_12:10:41 WARN: Late heartbeat: Node gw1: interval 1200 ms\n"
            "heartbeat[2853]: 2012/05/09_12:10:42 ERROR: Both machines own our resources!\n"
            "heartbeat[2853]: 2012/05/09_12:10:43 ERROR: something else broke\n"
            "heartbeat[2853]: 2012/05/09_12:10:44 info: Status update for node gw1: status dead\n"
            "heartbeat[2853]: 2012/05/09_12:10:45 debug: nothing to see\n")
    events = hb.parse_heartbeat_log(text)
    assert [(e.kind, e.node, e.detail, e.severity) for e in events] == [
        ("node_dead", "gw1", None, ALERT), ("link_dead", "gw1", "eth0", WARN),
        ("late_heartbeat", "gw1", "1200 ms", WARN), ("both_own_resources", None, None, ALERT),
        ("error", None, None, WARN), ("node_status", "gw1", "dead", ALERT)]
    assert events[0].timestamp == "2012/05/09_12:10:40" and events[0].program == "heartbeat"
    assert hb.parse_heartbeat_log("just words").problems == ["no log lines found"]


def test_lab_log_of_heartbeat_3_0_6(read_fixture):
    """Heartbeat 3.0.6's logfile mixes its own syslog-style lines with its resource scripts'
    `2026/12/02_16:49:54  mach_down(default)[3879]:    info: ...` lines: both are read."""
    events = hb.parse_heartbeat_log(read_fixture("heartbeat-log-lab-3.0.6.log"))
    assert events.problems == []
    kinds = [(e.kind, e.node, e.detail) for e in events]
    assert kinds[3:9] == [
        ("node_dead", "slave", None), ("no_stonith", None, None), ("acquiring_from", "slave", None),
        ("link_dead", "slave", "eth1"), ("foreign_acquired", None, None), ("takeover_complete", "slave", None)]
    assert ("node_status", "slave", "active") in kinds
    script = events[8]
    assert (script.timestamp, script.program, script.pid, script.level, script.message) == (
        "2026/12/02_16:49:54", "mach_down", 3879, "info", "mach_down takeover complete for node slave.")
    assert (events[3].timestamp, events[3].host, events[3].severity) == ("Dec 02 16:49:54", "master", ALERT)
    assert [e.clock for e in events[7:9]] == ["16:49:54", "16:49:54"]
