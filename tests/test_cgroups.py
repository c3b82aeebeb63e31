"""VM limits with cgroup v1 or v2, chosen from what the machine mounts. The v2 path is tested on a
directory tree shaped like a cgroup2 mount (this machine runs cgroup v1); the real v1 path is in
tests/test_pve_lab.py."""

from __future__ import annotations

from pathlib import Path

from hatui.lab.cgroups import Cgroups

V1_MOUNTS = ("cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,cpu,cpuacct 0 0\n"
             "cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,memory 0 0\n")
V2_MOUNTS = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec 0 0\n"


def cgroup2_tree(root: Path, lab: str, host: str) -> Path:
    """A unified hierarchy as the kernel shows it: control files appear in every group."""
    for d in (root, root / f"hatui-{lab}", root / f"hatui-{lab}" / host):
        d.mkdir(parents=True, exist_ok=True)
        for name in ("cgroup.subtree_control", "cgroup.procs", "cpu.max", "memory.max"):
            (d / name).write_text("")
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    return root


def test_v1_is_chosen_where_its_controllers_are_mounted(tmp_path):
    (tmp_path / "mounts").write_text(V1_MOUNTS)
    cg = Cgroups("t", mounts_file=tmp_path / "mounts", unified_root=tmp_path / "none", check_root=False)
    assert (cg.version, cg.unavailable, cg.describe()) == (1, None, "cgroup v1")
    assert cg.path("memory", "h1") == Path("/sys/fs/cgroup/memory/hatui-t/h1")


def test_v2_limits_are_written_as_cpu_max_and_memory_max(tmp_path):
    (tmp_path / "mounts").write_text(V2_MOUNTS)
    root = cgroup2_tree(tmp_path / "cgroup2", "t", "h1")
    cg = Cgroups("t", mounts_file=tmp_path / "mounts", unified_root=root, check_root=False)
    assert (cg.version, cg.describe()) == (2, "cgroup v2")
    text = cg.apply("h1", 2, 512)
    assert text == "cgroup v2 hatui-t/h1: cpu.max 200000 100000 (2 cores), memory 512 MiB"
    leaf = root / "hatui-t" / "h1"
    assert (leaf / "cpu.max").read_text() == "200000 100000"
    assert (leaf / "memory.max").read_text() == str(512 * 1048576)
    # the controllers are handed down from the root and the lab's group
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +memory"
    assert (root / "hatui-t" / "cgroup.subtree_control").read_text() == "+cpu +memory"
    assert cg.attach("h1", [4242]) == 1  # one hierarchy in v2
    assert (leaf / "cgroup.procs").read_text() == "4242"


def test_no_controllers_means_no_limits_and_says_why(tmp_path):
    (tmp_path / "mounts").write_text(V2_MOUNTS)
    root = tmp_path / "cgroup2"
    root.mkdir()
    (root / "cgroup.controllers").write_text("pids io\n")
    cg = Cgroups("t", mounts_file=tmp_path / "mounts", unified_root=root, check_root=False)
    assert cg.version is None and "cgroup v2 hierarchy offering cpu and memory" in cg.describe()
    try:
        cg.apply("h1", 1, 64)
    except OSError as exc:
        assert "neither cgroup v1" in exc.strerror
    else:
        raise AssertionError("apply must refuse without controllers")


def test_results_and_report_say_how_vms_were_limited():
    from hatui.config import load_lab
    from hatui.core import Core
    from hatui.provenance import environment
    from hatui.report import report_markdown, results_document

    lab = load_lab(Path(__file__).resolve().parents[1] / "lab.toml")
    how = Core(lab).vm_limits()  # the repository's lab has local VMs
    assert how in ("cgroup v1", "cgroup v2") or how.startswith("not applied: ")
    env = environment({}, how)
    assert results_document([], lab_name="t", plan_info={}, environment=env)["environment"]["vm_limits"] == how
    assert f"VM CPU and memory limits on the local lab: {how}." in report_markdown([], lab_name="t", plan_info={},
                                                                                  environment=env)
