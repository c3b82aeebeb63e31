"""Core and UI apart: no module outside hatui.ui may import Textual (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

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
