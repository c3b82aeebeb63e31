"""Layers apart: no module outside hatui.ui may import Textual (checked in a fresh interpreter);
every front end (the UI, the commands) reaches the cluster only through the core (`hatui.core.Core`,
described for the UI by `hatui.session_protocol.CoreProtocol`); the drill, the collectors and the
load generator never import the local lab; the lab's modules import each other without cycles."""

from __future__ import annotations

import ast
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import hatui

UI_PACKAGES = ("hatui.ui",)


def core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(hatui.__path__, prefix="hatui."):
        if info.name.startswith(UI_PACKAGES) or info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return sorted(names)


def test_there_are_core_modules_to_check():
    assert {"hatui.config", "hatui.cli", "hatui.errors"} <= set(core_modules())


def test_core_modules_do_not_import_textual():
    code = (
        "import importlib, json, sys\n"
        f"names = {core_modules()!r}\n"
        "offenders = []\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "    if any(m == 'textual' or m.startswith('textual.') for m in sys.modules):\n"
        "        offenders.append(name); break\n"
        "print(json.dumps(offenders))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_cli_help_does_not_import_textual():
    code = "import sys\nfrom hatui.cli import build_parser\nbuild_parser()\nprint('textual' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_headless_export_does_not_import_textual(tmp_path):
    """`hatui export` runs on CI machines and from cron: nothing on its path may need the TUI's stack."""
    code = ("import sys\nfrom hatui.cli import main\n"
            "import hatui.commands.export, hatui.core, hatui.drill.runner, hatui.report, hatui.load.writes\n"
            f"code = main(['export', {str(tmp_path / 'out')!r}, '--lab', {str(tmp_path / 'none.toml')!r}])\n"
            "print(code, 'textual' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "2 False", result.stderr


# --- every front end reaches hosts, load and drills only through the core ---------------------------

# What only hatui.core may build: SSH pools, cluster readings, load runs and drill runners.
FRONT_END_FORBIDDEN = ("hatui.transport", "hatui.load.engine", "hatui.load.httperf", "hatui.drill.runner",
                       "hatui.collectors.cluster.collect_state", "hatui.load.make_run", "hatui.load.LoadRun",
                       "hatui.load.ShardedRun", "hatui.load.HttperfRun", "hatui.proxmox.PveClient",
                       "hatui.vms.lab_client")


def front_end_offenders(directory: Path) -> dict[str, list[str]]:
    found = {str(path.relative_to(directory.parent)): sorted(
                 name for name in imported_names(path)
                 if any(name == f or name.startswith(f + ".") for f in FRONT_END_FORBIDDEN))
             for path in sorted(directory.rglob("*.py"))}
    return {name: names for name, names in found.items() if names}


def test_front_ends_go_through_the_core():
    """The TUI (hatui/ui) and the commands (hatui/commands) parse and present; hatui.core acts."""
    package = Path(hatui.__file__).parent
    assert front_end_offenders(package / "ui") == {}
    assert front_end_offenders(package / "commands") == {}


def test_the_front_end_check_finds_a_bypass(tmp_path):
    (tmp_path / "commands").mkdir()
    (tmp_path / "commands" / "status.py").write_text(
        "from hatui.transport import SshPool\nfrom hatui.collectors.cluster import SCHEMA, collect_state\n")
    assert front_end_offenders(tmp_path / "commands") == {
        "commands/status.py": ["hatui.collectors.cluster.collect_state", "hatui.transport", "hatui.transport.SshPool"]}


def test_core_and_fake_core_satisfy_the_protocol_with_the_same_signatures():
    from hatui.core import Core
    from hatui.session_protocol import CoreProtocol
    from hatui.ui.fake import FakeCore
    from hatui.ui.fake_cluster import fake_lab

    assert isinstance(Core(fake_lab()), CoreProtocol)
    assert isinstance(FakeCore(), CoreProtocol)

    def shape(function) -> list[tuple]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]

    methods = [name for name, value in vars(CoreProtocol).items()
               if callable(value) and not name.startswith("_")]
    assert "run_load" in methods and "can_list_vms" in methods
    for name in methods:
        wanted = shape(getattr(CoreProtocol, name))
        assert shape(getattr(Core, name)) == wanted, f"Core.{name}"
        assert shape(getattr(FakeCore, name)) == wanted, f"FakeCore.{name}"
        coroutine = inspect.iscoroutinefunction(getattr(CoreProtocol, name))
        assert inspect.iscoroutinefunction(getattr(Core, name)) == coroutine, f"Core.{name}"
        assert inspect.iscoroutinefunction(getattr(FakeCore, name)) == coroutine, f"FakeCore.{name}"


# --------------------------------------------------------------------------------------------
# Imports read from the source: top-level and function-level alike


SOURCE_ROOT = Path(hatui.__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every module `path` may import anywhere in it: `from a import b` counts a and a.b (b may be a
    module); relative imports are resolved."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def lab_import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in sorted((SOURCE_ROOT / "hatui" / "lab").rglob("*.py"))}
    return {name: {n for n in imported_names(path) if n in files and n != name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for dep in sorted(graph[node]):
            cycle = visit(dep, path + [node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_drill_collectors_and_load_do_not_import_the_lab():
    offenders = []
    for package in ("collectors", "load", "drill"):
        for path in sorted((SOURCE_ROOT / "hatui" / package).rglob("*.py")):
            for name in sorted(imported_names(path)):
                if name == "hatui.lab" or name.startswith("hatui.lab."):
                    offenders.append(f"{module_name(path)} imports {name}")
    assert offenders == []


def test_the_lab_imports_without_cycles():
    graph = lab_import_graph()
    assert "hatui.lab.hosts" in graph["hatui.lab.build"]  # the scan sees the lab's imports
    assert "hatui.lab.drbd.daemon" in graph["hatui.lab.drbd.commands"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_a_cycle_is_found():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
