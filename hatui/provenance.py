"""Where a drill's numbers came from: hatui's version and commit, Python and the key packages, the
kernel, and each host's heartbeat, DRBD and nginx versions (results.json "environment")."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from hatui import __version__

PACKAGES = ("textual", "asyncssh", "proxmoxer", "plotext")

# One command per host, each answer on its own marked line; a missing tool leaves its line empty.
HOST_COMMAND = ("echo @@heartbeat; { heartbeat -V 2>/dev/null || dpkg-query -W -f '${Version}' heartbeat 2>/dev/null; } | head -n1; "
                "echo; echo @@drbd; drbdadm --version 2>/dev/null | grep -m1 -i 'version'; "
                "echo @@nginx; nginx -v 2>&1 | head -n1")
HOST_SOFTWARE = ("heartbeat", "drbd", "nginx")


def parse_host_software(stdout: str) -> dict[str, str | None]:
    """{"heartbeat": ..., "drbd": ..., "nginx": ...} from HOST_COMMAND's output (None: not found)."""
    found: dict[str, str | None] = dict.fromkeys(HOST_SOFTWARE)
    current = None
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("@@") and line[2:] in found:
            current = line[2:]
        elif line and current and found[current] is None and "not found" not in line:
            found[current] = line
    return found


def git_commit() -> str | None:
    """HEAD of the checkout hatui runs from, or None (an installed package, no git)."""
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment(hosts: dict[str, dict] | None = None, vm_limits: str | None = None) -> dict:
    """This machine's side (its `hostname` too, the one junit.xml names), plus the hosts' software as `Core.software_versions` read it and how the
    local lab's VMs are limited (`Core.vm_limits`)."""
    return {
        "hatui": __version__, "git_commit": git_commit(), "python": platform.python_version(),
        "python_executable": sys.executable, "packages": {name: _package_version(name) for name in PACKAGES},
        "kernel": platform.release(), "hostname": socket.gethostname(), "hosts": hosts, "vm_limits": vm_limits,
    }
