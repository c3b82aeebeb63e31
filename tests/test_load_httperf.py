"""The httperf backend: the report parser (recipe samples, real output, fuzz) and real runs."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hatui.load import (HttperfParseError, HttperfRun, LoadSpec, ProbeSpec, httperf_args, parse_httperf,
                        report_to_summary)
from hatui.load.format import format_summary
from hatui.load.testing import TestHttpServer, closed_port

HTTPERF = shutil.which("httperf") or "/usr/bin/httperf"
needs_httperf = pytest.mark.skipif(shutil.which(HTTPERF) is None, reason="httperf is not installed")

# lab-recipe.md section 6.4, verbatim (several are condensed: lines left out)
RECIPE = {
    "graceful-10x500": ("""\
Total: connections 500 requests 495 replies 495 test-duration 49.900 s
Connection rate: 10.0 conn/s (99.8 ms/conn, <=5 concurrent connections)
Connection time [ms]: min 0.1 avg 12.7 max 1023.0 median 0.5 stddev 111.4
Connection time [ms]: connect 12.2
Reply rate [replies/s]: min 9.4 avg 9.9 max 10.0 stddev 0.2 (9 samples)
Reply time [ms]: response 0.4 transfer 0.0
Reply status: 1xx=0 2xx=495 3xx=0 4xx=0 5xx=0
CPU time [s]: user 6.40 system 41.64 (user 12.8% system 83.5% total 96.3%)
Errors: total 5 client-timo 0 socket-timo 0 connrefused 5 connreset 0
Errors: fd-unavail 0 addrunavail 0 ftab-full 0 other 0
""", dict(requests=500, replies=495, success=495, connrefused=5, error_total=5, rate=10)),
    "graceful-50x2000": ("""\
Total: connections 2000 requests 1975 replies 1975 test-duration 39.981 s
Connection time [ms]: min 0.1 avg 19.4 max 1029.4 median 0.5 stddev 137.7
Reply status: 1xx=0 2xx=1975 3xx=0 4xx=0 5xx=0
Errors: total 25 client-timo 0 socket-timo 0 connrefused 25 connreset 0
""", dict(requests=2000, replies=1975, success=1975, connrefused=25, error_total=25, rate=50)),
    "graceful-10x2000": ("""\
Total: connections 2000 requests 1997 replies 1997 test-duration 199.901 s
Connection time [ms]: min 0.2 avg 4.4 max 1032.5 median 0.5 stddev 64.1
Reply rate [replies/s]: min 9.6 avg 10.0 max 10.0 stddev 0.1 (39 samples)
Reply status: 1xx=0 2xx=1997 3xx=0 4xx=0 5xx=0
Errors: total 3 client-timo 0 socket-timo 0 connrefused 3 connreset 0
""", dict(requests=2000, replies=1997, success=1997, connrefused=3, error_total=3, rate=10)),
    "graceful-timeout1": ("""\
Total: connections 500 requests 488 replies 488 test-duration 49.901 s
Errors: total 12 client-timo 10 socket-timo 0 connrefused 2 connreset 0
""", dict(requests=500, replies=488, success=488, connrefused=2, error_total=12, rate=10)),
    "crash-classic-timeout1": ("""\
Total: connections 2000 requests 1494 replies 1494 test-duration 39.982 s
Reply status: 1xx=0 2xx=1494 3xx=0 4xx=0 5xx=0
Errors: total 506 client-timo 490 socket-timo 0 connrefused 16 connreset 0
""", dict(requests=2000, replies=1494, success=1494, connrefused=16, error_total=506, rate=50)),
    "crash-classic-notimeout": ("""\
Total: connections 1500 requests 1476 replies 1476 test-duration 29.981 s
Connection time [ms]: min 0.2 avg 2118.9 max 11398.2 median 0.5 stddev 3654.6
Errors: total 24 connrefused 24
""", dict(requests=1500, replies=1476, success=1476, connrefused=24, error_total=24, rate=50)),
    "crash-k200": ("""\
Total: connections 1050 requests 1031 replies 1031 test-duration 20.981 s
Connection time [ms]: max 2060.3
Errors: total 19 connrefused 19
""", dict(requests=1050, replies=1031, success=1031, connrefused=19, error_total=19, rate=50)),
}

# httperf(1), OUTPUT section
MAN_PAGE = """\
Total: connections 30000 requests 29997 replies 29997 test-duration 299.992 s

Connection rate: 100.0 conn/s (10.0 ms/conn, <=14 concurrent connections)
Connection time [ms]: min 1.4 avg 3.0 max 163.4 median 1.5 stddev 7.3
Connection time [ms]: connect 0.6
Connection length [replies/conn]: 1.000

Request rate: 100.0 req/s (10.0 ms/req)
Request size [B]: 75.0

Reply rate [replies/s]: min 98.8 avg 100.0 max 101.2 stddev 0.3 (60 samples)
Reply time [ms]: response 2.4 transfer 0.0
Reply size [B]: header 242.0 content 1010.0 footer 0.0 (total 1252.0)
Reply status: 1xx=0 2xx=29997 3xx=0 4xx=0 5xx=0

CPU time [s]: user 94.31 system 205.26 (user 31.4% system 68.4% total 99.9%)
Net I/O: 129.6 KB/s (1.1*10^6 bps)

Errors: total 3 client-timo 0 socket-timo 0 connrefused 3 connreset 0
Errors: fd-unavail 0 addrunavail 0 ftab-full 0 other 0
"""


@pytest.mark.parametrize("name", sorted(RECIPE))
def test_recipe_samples_parse_into_the_same_summary_type(name):
    text, want = RECIPE[name]
    rep = parse_httperf(text)
    s = report_to_summary(rep, LoadSpec("http://10.251.0.100/index.html", want["rate"], want["requests"], timeout=1))
    assert s.engine == "httperf" and s.requests == want["requests"] and s.replies == want["replies"]
    assert s.success == want["success"] and s.errors["connrefused"] == want["connrefused"]
    assert s.error_total == want["error_total"] == s.requests - s.success
    assert sum(s.errors.values()) == s.error_total
    assert s.per_second is None and s.outages is None  # httperf cannot say
    assert s.achieved_rate == pytest.approx(want["rate"], rel=0.01)
    assert s.valid, s.invalid_reasons
    assert "Outages: not measured" in format_summary(s)


def test_recipe_first_sample_details():
    rep = parse_httperf(RECIPE["graceful-10x500"][0])
    assert rep.conn_rate == 10.0 and rep.max_concurrent == 5 and rep.connect_ms == 12.2
    assert rep.conn_time_ms == {"min": 0.1, "avg": 12.7, "max": 1023.0, "median": 0.5, "stddev": 111.4}
    assert rep.reply_rate["samples"] == 9 and rep.response_ms == 0.4
    assert rep.cpu_user_s == 6.40 and rep.cpu_system_s == 41.64 and rep.cpu_total_pct == 96.3
    assert rep.errors == {"total": 5, "client-timo": 0, "socket-timo": 0, "connrefused": 5, "connreset": 0,
                          "fd-unavail": 0, "addrunavail": 0, "ftab-full": 0, "other": 0}


def test_timeout_sample_without_status_line_keeps_classes():
    s = report_to_summary(parse_httperf(RECIPE["graceful-timeout1"][0]), LoadSpec("http://h/", 10, 500, timeout=1))
    assert s.errors["client-timo"] == 10 and s.errors["connrefused"] == 2
    assert any("Reply status" in n for n in s.notes)


def test_man_page_sample_and_invalid_runs():
    s = report_to_summary(parse_httperf(MAN_PAGE), LoadSpec("http://h/", 100, 30000, timeout=5))
    assert s.requests == 30000 and s.success == 29997 and s.max_inflight == 14
    assert s.cpu_user_s == 94.31 and s.valid
    bad = MAN_PAGE.replace("fd-unavail 0", "fd-unavail 7").replace("Errors: total 3", "Errors: total 10")
    bad = bad.replace("requests 29997 replies 29997", "requests 29990 replies 29990")
    bad = bad.replace("2xx=29997", "2xx=29990")
    s = report_to_summary(parse_httperf(bad), LoadSpec("http://h/", 100, 30000, timeout=5))
    assert not s.valid and "fd-unavail 7" in s.invalid_reasons[0]
    slow = report_to_summary(parse_httperf(MAN_PAGE), LoadSpec("http://h/", 120, 30000, timeout=5))
    assert not slow.valid and "under the target 120" in slow.invalid_reasons[0]


@pytest.mark.parametrize("text, message", [
    ("", "printed nothing"),
    ("httperf: warning: open file limit > FD_SETSIZE\n", "no 'Total:' line"),
    ("Total: connections many requests 3 replies 3 test-duration 1.0 s\n", "garbled 'Total:' line"),
    ("Total: connections 3 requests 3 replies 4 test-duration 1.0 s\n", "inconsistent totals"),
    (MAN_PAGE + MAN_PAGE, "more than one httperf report"),
    (MAN_PAGE.replace("2xx=29997", "2xx=29"), "add up to"),
    (MAN_PAGE.replace("connrefused 3", "connrefused x"), "garbled line"),
    (MAN_PAGE.replace("Connection rate: 100.0 conn/s", "Connection rate: fast"), "garbled line"),
    (MAN_PAGE.replace("Errors: fd-unavail", "Errors: bogus-class"), "unknown error classes"),
])
def test_garbled_output_gives_a_clear_error(text, message):
    with pytest.raises(HttperfParseError, match=message):
        parse_httperf(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_parser_never_raises_anything_else_on_random_text(text):
    try:
        parse_httperf(text)
    except HttperfParseError:
        pass


_LINES = [ln for ln in MAN_PAGE.splitlines()]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_LINES), st.integers(0, 60), st.text(max_size=3)), max_size=20))
def test_parser_on_mangled_report_lines(edits):
    lines = list(_LINES)
    for line, pos, junk in edits:  # splice junk into real lines, drop or duplicate some
        if junk == "":
            lines.remove(line) if line in lines else None
        else:
            lines.append(line[:pos] + junk + line[pos:])
    try:
        rep = parse_httperf("\n".join(lines))
    except HttperfParseError:
        return
    assert rep.replies <= rep.requests <= rep.connections


def test_httperf_args():
    spec = LoadSpec("http://vip.example:8080/index.php?x=1", 12.5, 2000, timeout=1.5, host_header="www")
    args = httperf_args(spec, server="10.251.0.100", hog=True, httperf="/usr/bin/httperf")
    assert args == ["/usr/bin/httperf", "--server", "10.251.0.100", "--port", "8080", "--uri", "/index.php?x=1",
                    "--server-name", "www", "--rate", "12.5", "--num-conns", "2000", "--num-calls", "1",
                    "--timeout", "1.5", "--hog"]


@needs_httperf
def test_parser_on_real_httperf_output():
    async def main():
        async with TestHttpServer() as srv:
            sock, port = closed_port()
            try:
                proc = await asyncio.create_subprocess_exec(
                    HTTPERF, "--server", "127.0.0.1", "--port", str(srv.port), "--uri", "/index.html",
                    "--rate", "100", "--num-conns", "30", "--timeout", "2",
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                out, _ = await asyncio.wait_for(proc.communicate(), 20)
                proc2 = await asyncio.create_subprocess_exec(
                    HTTPERF, "--server", "127.0.0.1", "--port", str(port), "--rate", "100", "--num-conns", "5",
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                out2, _ = await asyncio.wait_for(proc2.communicate(), 20)
            finally:
                sock.close()
            return out.decode(), out2.decode(), srv.served

    text, refused_text, served = asyncio.run(main())
    rep = parse_httperf(text)
    assert rep.connections == 30 and rep.replies == 30 == served and rep.status["2xx"] == 30
    assert rep.command and rep.command.startswith("httperf") and rep.cpu_user_s is not None
    assert rep.errors["total"] == 0 and rep.max_concurrent >= 1
    rep2 = parse_httperf(refused_text)
    assert rep2.connections == 5 and rep2.replies == 0 and rep2.errors["connrefused"] == 5


@needs_httperf
async def test_httperf_run_same_interface_with_probe():
    async with TestHttpServer(name="n1") as srv:
        run = HttperfRun(LoadSpec(srv.url, 100, 100, timeout=2), probe=ProbeSpec(interval=0.01, timeout=0.2),
                         httperf=HTTPERF)
        ticks = []
        run.add_listener(ticks.append)
        s = await asyncio.wait_for(run.run(), 30)
        assert srv.served == 100 + s.probe.success
    assert s.engine == "httperf" and s.requests == 100 and s.success == 100 and s.valid, s.invalid_reasons
    assert s.per_second is None and s.outages == [] and s.outage_stream == "probe"
    assert s.cpu_user_s is not None and s.httperf["command"].startswith("httperf")
    assert s.probe.requests >= 90 and s.probe.success == s.probe.requests
    assert ticks[0].kind == "started" and ticks[-1].kind == "finished"
    assert run.result.load is None and run.result.summary is s


@needs_httperf
async def test_httperf_stop_still_reports():
    async with TestHttpServer() as srv:
        run = HttperfRun(LoadSpec(srv.url, 50, 1000, timeout=2), httperf=HTTPERF)
        task = asyncio.ensure_future(run.run())
        await asyncio.sleep(1.0)
        run.stop()
        s = await asyncio.wait_for(task, 15)
    assert s.stopped and 20 <= s.requests < 1000 and s.success == s.requests


async def test_httperf_garbage_output_is_an_invalid_summary_not_a_crash(tmp_path):
    fake = tmp_path / "httperf"
    fake.write_text("#!/bin/sh\necho 'httperf: something went badly wrong' >&2\necho 'Total: garbage'\nexit 1\n")
    fake.chmod(0o755)
    s = await asyncio.wait_for(HttperfRun(LoadSpec("http://127.0.0.1:9/", 10, 5, timeout=1),
                                          httperf=str(fake)).run(), 10)
    assert not s.valid and "httperf output could not be read" in s.invalid_reasons[0]
    assert "exit 1" in s.invalid_reasons[0] and "badly wrong" in s.invalid_reasons[0]


def test_missing_httperf_is_a_clear_error():
    from hatui.load import LoadSpecError

    with pytest.raises(LoadSpecError, match="httperf not found"):
        asyncio.run(HttperfRun(LoadSpec("http://127.0.0.1:9/", 10, 5), httperf="/nonexistent/httperf").run())


def test_connections_cut_by_a_stop_are_aborted_not_errors():
    text = """\
Total: connections 51 requests 51 replies 50 test-duration 1.000 s
Reply status: 1xx=0 2xx=50 3xx=0 4xx=0 5xx=0
Errors: total 0 client-timo 0 socket-timo 0 connrefused 0 connreset 0
Errors: fd-unavail 0 addrunavail 0 ftab-full 0 other 0
"""
    spec = LoadSpec("http://h/", 50, 1000)
    stopped = report_to_summary(parse_httperf(text), spec, stopped=True)
    assert stopped.requests == 50 and stopped.aborted == 1 and stopped.error_total == 0
    odd = report_to_summary(parse_httperf(text), spec)
    assert odd.requests == 51 and odd.errors["other"] == 1 and odd.error_total == 1
