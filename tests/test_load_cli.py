"""`hatui load`: exit codes, output, records, Ctrl-C, FD exhaustion (loopback servers only)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from hatui.cli import main
from hatui.load.testing import TestHttpServer


class ServerThread:
    """Loopback test servers on their own loop in a thread (the CLI runs its own loop)."""

    def __init__(self, **modes):
        self.modes = modes
        self.servers: dict[str, TestHttpServer] = {}
        self._ready = threading.Event()
        self._loop = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self):
        loop = self._loop = asyncio.new_event_loop()
        for name, kwargs in self.modes.items():
            self.servers[name] = loop.run_until_complete(TestHttpServer(**kwargs).start())
        self._ready.set()
        loop.run_forever()
        for srv in self.servers.values():
            loop.run_until_complete(srv.stop())
        loop.close()

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def servers():
    with ServerThread(ok={"name": "web1"}, silent={"mode": "silent"}) as st:
        yield st.servers


def cli(*args: str) -> int:
    return main(["load", *args])


@pytest.mark.parametrize("args, message", [
    (["https://127.0.0.1/", "--rate", "10", "--num-conns", "5"], "only http://"),
    (["ftp://127.0.0.1/", "--rate", "10", "--num-conns", "5"], "only http://"),
    (["127.0.0.1/index.html", "--rate", "10", "--num-conns", "5"], "not an http:// URL"),
    (["http:///index.html", "--rate", "10", "--num-conns", "5"], "no host"),
    (["http://127.0.0.1:99999/", "--rate", "10", "--num-conns", "5"], "bad URL"),
    (["http://no-such-host.invalid/", "--rate", "10", "--num-conns", "5"], "cannot resolve host"),
    (["http://127.0.0.1/", "--rate", "0", "--num-conns", "5"], "--rate must be > 0"),
    (["http://127.0.0.1/", "--rate", "-3", "--num-conns", "5"], "--rate must be > 0"),
    (["http://127.0.0.1/", "--rate", "nan", "--num-conns", "5"], "--rate must be > 0"),
    (["http://127.0.0.1/", "--rate", "10", "--num-conns", "0"], "--num-conns must be > 0"),
    (["http://127.0.0.1/", "--rate", "10", "--num-conns", "-1"], "--num-conns must be > 0"),
    (["http://127.0.0.1/", "--rate", "10", "--num-conns", "5", "--timeout", "0"], "--timeout must be > 0"),
    (["http://127.0.0.1/", "--rate", "10", "--num-conns", "5", "--probe-interval", "-1"], "--probe-interval"),
    (["http://127.0.0.1/", "--rate", "10", "--num-conns", "5", "--served-by-pattern", "("], "served-by pattern"),
    (["http://127.0.0.1/", "--rate", "10", "--num-conns", "5", "--host", "a b"], "bad Host header"),
    (["http://127.0.0.1/", "--rate", "10", "--num-conns", "5", "--workers", "0"], "--workers must be"),
    (["http://127.0.0.1/", "--rate", "10", "--num-conns", "5", "--workers", "2", "--engine", "httperf"],
     "--workers is for the builtin"),
])
def test_bad_input_exits_2_with_a_message(args, message, capsys):
    assert cli(*args) == 2
    err = capsys.readouterr().err
    assert err.startswith("hatui: ") and message in err and "Traceback" not in err


@pytest.mark.parametrize("args", [["--rate", "abc", "--num-conns", "5"], ["--rate", "10", "--num-conns", "1.5"],
                                  ["--num-conns", "5"], ["--rate", "1", "--num-conns", "5", "--engine", "ab"]])
def test_unparsable_options_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exc:
        cli("http://127.0.0.1/", *args)
    assert exc.value.code == 2


@pytest.mark.parametrize("args, message", [
    (["--rate", "1000", "--num-conns", "1000001"], "more than 1,000,000"),
    (["--rate", "0.5", "--num-conns", "2000"], "more than 3600 s"),
])
def test_runs_beyond_the_limits_are_refused_without_force(args, message, capsys):
    assert cli("http://127.0.0.1:9/", *args) == 3
    err = capsys.readouterr().err
    assert message in err and "--force" in err


def test_json_run_and_records(servers, tmp_path, capsys):
    rec = tmp_path / "records.csv"
    rc = cli(servers["ok"].url, "--rate", "100", "--num-conns", "20", "--timeout", "2", "--json",
             "--probe-interval", "10", "--records", str(rec))
    out = capsys.readouterr().out
    assert rc == 0
    data = json.loads(out)
    assert data["requests"] == 20 and data["success"] == 20 and data["valid"] is True
    assert data["availability_pct"] == 100.0 and data["served_by"] == {"web1": 20}
    assert data["outages"] == [] and data["probe"]["requests"] >= 15
    assert len(data["per_second"]) >= 1 and data["cpu_user_s"] is not None
    lines = rec.read_text().splitlines()
    assert lines[0].startswith("stream,index,scheduled,start")
    assert sum(1 for ln in lines if ln.startswith("load,")) == 20
    assert sum(1 for ln in lines if ln.startswith("probe,")) == data["probe"]["requests"]


def test_text_report_and_jsonl_records(servers, tmp_path, capsys):
    rec = tmp_path / "r.jsonl"
    assert cli(servers["ok"].url, "--rate", "50", "--num-conns", "10", "--records", str(rec)) == 0
    out = capsys.readouterr().out
    assert "Total: connections 10 replies 10 success 10" in out and "Result: VALID" in out
    assert "Outages (load stream, resolution 20 ms): none" in out
    assert len(rec.read_text().splitlines()) == 10 and json.loads(rec.read_text().splitlines()[0])["stream"] == "load"


def test_records_need_per_connection_data(servers, capsys):
    assert cli(servers["ok"].url, "--rate", "10", "--num-conns", "5", "--engine", "httperf", "--records", "x") == 2
    assert "no per-connection records" in capsys.readouterr().err


def test_unwritable_records_file_fails_before_the_run(servers, capsys):
    assert cli(servers["ok"].url, "--rate", "10", "--num-conns", "5", "--records", "/nonexistent/dir/r.csv") == 2
    assert "cannot write records" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("httperf") is None, reason="httperf is not installed")
def test_httperf_engine_from_the_cli(servers, capsys):
    rc = cli(servers["ok"].url, "--rate", "100", "--num-conns", "100", "--timeout", "2", "--engine", "httperf")
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "hatui load [httperf]" in out and "Total: connections 100 replies 100 success 100" in out


def _subprocess_cli(args, *, nofile=None, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    def limit():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    return subprocess.Popen([sys.executable, "-m", "hatui", "load", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=limit, **kw)


def test_fd_exhaustion_is_counted_and_the_run_invalid(servers):
    """48 fds, connections that never end: the client runs out of descriptors -> fd-unavail, exit 1."""
    p = _subprocess_cli([servers["silent"].url, "--rate", "400", "--num-conns", "120", "--timeout", "0.5"],
                        nofile=48)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, err
    assert "Result: INVALID" in out and "client-side resource errors" in out
    fd_line = next(ln for ln in out.splitlines() if ln.startswith("Errors: fd-unavail"))
    assert int(fd_line.split()[2]) > 0
    assert "Traceback" not in err


def test_ctrl_c_stops_cleanly_and_still_reports(servers):
    p = _subprocess_cli([servers["ok"].url, "--rate", "50", "--num-conns", "1000", "--timeout", "1"])
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "stopping" in err and "Traceback" not in err
    assert "stopped before all planned connections" in out
    total = next(ln for ln in out.splitlines() if ln.startswith("Total:"))
    n = int(total.split()[2])
    assert 10 < n < 1000 and f"success {n}" in total


def test_help_lists_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["load", "--help"])
    out = capsys.readouterr().out
    for word in ("--rate", "--num-conns", "--probe-interval", "--engine", "--records", "--force", "Exit codes"):
        assert word in out


def test_workers_option(servers, capsys):
    assert cli(servers["ok"].url, "--rate", "100", "--num-conns", "50", "--workers", "2", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["success"] == 50 and "sent from 2 processes" in data["notes"]
