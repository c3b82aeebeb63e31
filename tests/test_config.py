"""lab.toml loading: the shipped file is valid; every kind of bad file gives exit 2 and a precise message."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hatui.cli import main
from hatui.config import ConfigError, load_lab, parse_lab

REPO = Path(__file__).resolve().parents[1]
LAB_TEXT = (REPO / "lab.toml").read_text()


def test_shipped_lab_is_valid_and_models_the_study():
    lab = load_lab(REPO / "lab.toml")
    assert lab.local and lab.address_range is not None and lab.address_range.is_private
    native = lab.pairs["native"]
    assert (native.master, native.slave, str(native.vip)) == ("master", "slave", "10.251.0.100/24")
    assert native.resources[-2:] == ["IPaddr2::10.251.0.100/24/eth0", "hatui-web"]
    assert native.heartbeat.keepalive_ms == 100 and native.heartbeat.deadtime_ms == 500
    assert [h.name for h in lab.vms] == ["vm01a", "vm01b", "vm02a", "vm02b"]
    for vm in lab.vms:  # Table 2 of the study
        assert (vm.vm.cores, vm.vm.memory_mb, vm.vm.disks_gb, len(vm.nics)) == (1, 512, [50, 10], 2)
    assert {h.vm.node for h in lab.vms} == {"pve1", "pve2"}
    assert lab.load.connections == 2000 and lab.load.rates == [10, 20, 30, 40, 50] and lab.load.repetitions == 5
    assert lab.drill.fault == "stop-heartbeat"
    assert lab.proxmox.token_secret_file is not None and lab.proxmox.verify_tls
    for host in lab.hosts.values():
        for nic in host.nics.values():
            assert nic.address in lab.address_range


def test_check_accepts_the_shipped_lab(capsys):
    assert main(["check", "--lab", str(REPO / "lab.toml")]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "10.251.0.100/24" in out and "vm01a" in out


def sub(old: str, new: str, count: int = 1):
    def mutate(text: str) -> str:
        assert old in text, f"corpus is stale: {old!r} not in lab.toml"
        return text.replace(old, new, count)
    return mutate


def const(text: str):
    return lambda _: text


# (case id, how to break lab.toml, text the message must contain: the offending key path or file-level reason)
BAD_CONFIGS = [
    ("empty-file", const(""), "empty"),
    ("whitespace-only", const("  \n\n\t\n"), "empty"),
    ("binary-garbage", const("\x00\x01\x02\xff garbage"), "NUL"),
    ("syntax-unclosed-table", sub("[pairs.native]", "[pairs.native"), "TOML syntax error"),
    ("syntax-unclosed-string", sub('name = "local-lab"', 'name = "local-lab'), "TOML syntax error"),
    ("syntax-duplicate-key", sub('name = "local-lab"', 'name = "local-lab"\nname = "x"'), "TOML syntax error"),
    ("missing-lab-table", sub("[lab]\n", "[labb]\n"), "did you mean 'lab'"),
    ("unknown-top-key", sub("[ui]", "[uii]"), "uii: unknown key"),
    ("unknown-key-typo", sub("auto_failback = true", "auto_failbak = true"), "pairs.native.auto_failbak: unknown key; did you mean 'auto_failback'"),
    ("unknown-heartbeat-key", sub("keepalive_ms = 100, warntime_ms", "keepalive = 100, warntime_ms"), "pairs.native.heartbeat.keepalive"),
    ("wrong-type-port", sub("port = 22", 'port = "22"'), "ssh.port: expected an integer"),
    ("wrong-type-bool", sub("local = true", 'local = "yes"'), "lab.local: expected true or false"),
    ("wrong-type-rates", sub("rates = [10, 20, 30, 40, 50]", 'rates = ["10", "20"]'), "load.rates"),
    ("negative-rate", sub("rates = [10, 20, 30, 40, 50]", "rates = [10, -20]"), "load.rates"),
    ("zero-connections", sub("connections = 2000", "connections = 0"), "load.connections"),
    ("zero-repetitions", sub("repetitions = 5", "repetitions = 0"), "load.repetitions"),
    ("bad-address", sub('address = "10.251.0.11"', 'address = "10.251.0.300"'), "hosts.master.nics.eth0.address"),
    ("address-outside-network", sub('address = "10.251.1.12"', 'address = "10.251.9.12"'), "hosts.slave.nics.eth1.address"),
    ("duplicate-address", sub('address = "10.251.0.12"', 'address = "10.251.0.11"'), "hosts.slave.nics.eth0.address"),
    ("network-address-as-host", sub('address = "10.251.0.20"', 'address = "10.251.0.0"'), "hosts.client.nics.eth0.address"),
    ("overlapping-networks", sub('cidr = "10.251.2.0/24"', 'cidr = "10.251.1.128/25"'), "networks.vm-replication.cidr"),
    ("network-outside-range", sub('cidr = "10.251.2.0/24"', 'cidr = "10.252.2.0/24"'), "networks.vm-replication.cidr"),
    ("public-range-in-local-lab", sub('address_range = "10.251.0.0/16"', 'address_range = "8.8.0.0/16"'), "lab.address_range"),
    ("network-host-bits", sub('cidr = "10.251.1.0/24"', 'cidr = "10.251.1.1/24"'), "networks.replication.cidr"),
    ("vip-outside-network", sub('vip = "10.251.0.100/24"', 'vip = "10.251.5.100/24"'), "pairs.native.vip"),
    ("vip-no-prefix", sub('vip = "10.251.0.100/24"', 'vip = "10.251.0.100"'), "pairs.native.vip"),
    ("vip-is-host-address", sub('vip = "10.251.0.100/24"', 'vip = "10.251.0.12/24"'), "pairs.native.vip"),
    ("vip-duplicate", sub('vip = "10.251.0.110/24"', 'vip = "10.251.0.100/24"'), "pairs.vm01.vip"),
    ("vip-wrong-prefix", sub('vip = "10.251.0.100/24"', 'vip = "10.251.0.100/16"'), "pairs.native.vip"),
    ("dangling-master", sub('master = "master"', 'master = "mastr"'), "pairs.native.master: no host named \"mastr\"; did you mean 'master'"),
    ("dangling-network", sub('network = "replication", address = "10.251.1.11"', 'network = "replicaton", address = "10.251.1.11"'), "hosts.master.nics.eth1.network"),
    ("client-as-slave", sub('slave = "slave"', 'slave = "client"'), "pairs.native.slave"),
    ("same-master-slave", sub('slave = "slave"', 'slave = "master"'), "pairs.native.slave"),
    ("mixed-stacks", sub('slave = "vm01b"', 'slave = "slave"'), "pairs.vm01"),
    ("duplicate-vmid", sub("vmid = 102", "vmid = 101"), "hosts.vm01b.vm.vmid"),
    ("bad-vmid", sub("vmid = 103", "vmid = 7"), "hosts.vm02a.vm.vmid"),
    ("vm-node-unknown", sub('vmid = 104, node = "pve2"', 'vmid = 104, node = "pve9"'), "hosts.vm02b.vm.node"),
    ("virtual-without-vm", sub('vm = { vmid = 104, node = "pve2", cores = 1, memory_mb = 512, disks_gb = [50, 10] }\n', ""), "hosts.vm02b.vm"),
    ("inline-token-secret", sub('token_secret_file = "{state_dir}/pve/token.secret"', 'token_secret = "3f1c-secret-uuid"'), "proxmox.token_secret: secrets must not be written inline"),
    ("inline-password", sub('token_id = "hatui@pve!tui"', 'token_id = "root@pam!hatui"\npassword = "hunter2"'), "proxmox.password: secrets must not"),
    ("no-secret-source", sub('token_secret_file = "{state_dir}/pve/token.secret"', "# no secret"), "proxmox.token_secret_env"),
    ("bad-token-id", sub('token_id = "hatui@pve!tui"', 'token_id = "root"'), "proxmox.token_id"),
    ("http-endpoint", sub('endpoint = "https://127.0.0.1:8006"', 'endpoint = "http://127.0.0.1:8006"'), "proxmox.endpoint"),
    ("deadtime-not-above-keepalive", sub("keepalive_ms = 100, warntime_ms = 300, deadtime_ms = 500", "keepalive_ms = 600, warntime_ms = 300, deadtime_ms = 500"), "pairs.native.heartbeat.deadtime_ms"),
    ("warntime-above-deadtime", sub("warntime_ms = 300, deadtime_ms = 500", "warntime_ms = 900, deadtime_ms = 500"), "pairs.native.heartbeat.warntime_ms"),
    ("unknown-fault", sub('fault = "stop-heartbeat"', 'fault = "stop-heartbeet"'), "drill.fault: expected one of"),
    ("recover-before-fault", sub('recover_at = "60%"', 'recover_at = "10%"'), "drill.recover_at"),
    ("bad-timepoint", sub('fault_at = "25%"', 'fault_at = "soon"'), "drill.fault_at"),
    ("availability-over-100", sub("min_availability_pct = 80.0", "min_availability_pct = 190.0"), "thresholds.failover.min_availability_pct"),
    ("unknown-engine", sub('engine = "builtin"', 'engine = "wrk"'), "load.engine"),
    ("uri-without-slash", sub('uri = "/index.html"', 'uri = "index.html"'), "load.uri"),
    ("unknown-drbd-resource", sub('drbd = ["r0"]', 'drbd = ["r9"]'), "pairs.native.drbd"),
    ("relative-state-dir", sub('state_dir = "/run/hatui/local-lab"', 'state_dir = "run/lab"'), "lab.state_dir"),
    ("table-as-string", lambda t: "ssh = 'root'\n" + t.replace("[ssh]\n", "[sshx]\n"), "ssh: expected a table"),
    ("no-replication-link", sub('nics.eth1 = { network = "replication", address = "10.251.1.12" }\n', ""),
     "pairs.native: master and slave share no network besides the VIP's (public)"),
]


@pytest.mark.parametrize("case,mutate,expected", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_rejected_precisely(tmp_path, capsys, case, mutate, expected):
    bad = tmp_path / "lab.toml"
    text = mutate(LAB_TEXT)
    bad.write_bytes(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
    assert main(["check", "--lab", str(bad)]) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err
    assert str(bad) in err  # every line names the file


def test_corpus_is_large_enough():
    assert len(BAD_CONFIGS) >= 25


def test_problems_carry_line_numbers_and_all_are_reported():
    text = LAB_TEXT.replace("port = 22", 'port = "22"').replace("repetitions = 5", "repetitions = 0")
    with pytest.raises(ConfigError) as info:
        parse_lab(text, "x.toml")
    problems = {p.path: p for p in info.value.problems}
    assert set(problems) >= {"ssh.port", "load.repetitions"}
    lines = text.splitlines()
    assert "port" in lines[problems["ssh.port"].line - 1]
    assert "repetitions" in lines[problems["load.repetitions"].line - 1]


def test_missing_and_unreadable_files(tmp_path, capsys):
    assert main(["check", "--lab", str(tmp_path / "nope.toml")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["check", "--lab", str(tmp_path)]) == 2
    assert "directory" in capsys.readouterr().err
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"[lab]\nname = \"caf\xe9\"\n")
    assert main(["check", "--lab", str(latin)]) == 2
    assert "UTF-8" in capsys.readouterr().err


def test_secret_env_is_read_at_use_time(monkeypatch):
    lab = parse_lab(LAB_TEXT.replace('token_secret_file = "{state_dir}/pve/token.secret"', 'token_secret_env = "HATUI_TEST_TOKEN"'))
    monkeypatch.setenv("HATUI_TEST_TOKEN", "abc")
    assert lab.proxmox.token_secret() == "abc"
    monkeypatch.delenv("HATUI_TEST_TOKEN")
    with pytest.raises(Exception, match="HATUI_TEST_TOKEN is not set"):
        lab.proxmox.token_secret()


# --- property tests: no mutation of lab.toml ever produces anything but a Lab or a ConfigError

_LINES = LAB_TEXT.splitlines()


@st.composite
def mutated_lab(draw):
    lines = list(_LINES)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "dup", "truncate", "replace-value", "garbage", "swap"]))
        if op == "delete":
            lines.pop(i)
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, max(0, len(lines[i]))))]
        elif op == "replace-value" and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            value = draw(st.one_of(
                st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=False).map(repr),
                st.sampled_from(["true", "false", '""', "[]", "{}", '"x"', '"10.251.0.999"', '"-1%"', "[1, \"a\"]"]),
                st.text(max_size=12).map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"')))
            lines[i] = f"{key}= {value}"
        elif op == "garbage":
            lines[i] = draw(st.text(max_size=30))
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_lab())
def test_mutations_never_raise_anything_but_config_error(text):
    try:
        parse_lab(text, "fuzz.toml")
    except ConfigError as exc:
        assert exc.problems and all(isinstance(line, str) for line in exc.lines())


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_check(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "lab.toml"
    path.write_bytes(data)
    try:
        load_lab(path)
    except ConfigError:
        pass


def test_pair_peer_and_replication_nic():
    lab = load_lab(REPO / "lab.toml")
    native = lab.pairs["native"]
    assert (native.peer("master"), native.peer("slave")) == ("slave", "master")
    with pytest.raises(ValueError, match="not a node of pair native"):
        native.peer("client")
    assert lab.replication_nic(native, "master") == lab.replication_nic(native, "slave") == "eth1"
