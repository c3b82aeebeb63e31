"""Core and UI apart: no module outside hatui.ui may import Textual (checked in a fresh interpreter);
every front end (the UI, the commands) reaches the cluster only through the core (`hatui.core.Core`,
described for the UI by `hatui.session_protocol.CoreProtocol`)."""

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
                       "hatui.proxmox.lab_client")


def imported_modules(path) -> set[str]:
    """Every module an import statement in `path` names (`from a import b` gives a and a.b)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def front_end_offenders(directory: Path) -> dict[str, list[str]]:
    found = {str(path.relative_to(directory.parent)): sorted(
                 name for name in imported_modules(path)
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
    from hatui.ui.fake import FakeCore, fake_lab

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
