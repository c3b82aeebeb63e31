"""Start and stop the emulator as a child process (used by tests and the lab).

    with EmulatorProcess(tmp_path / "pve", extra_args=["--auth-fail-delay", "0"]) as emu:
        info = emu.info          # url, host, port, fingerprint, ca_file, token_id, ...
        secret = emu.token_secret()
        emu.set_offline(["pve2"])

Only the process this object started is ever signalled, by its PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from hatui.lab.pve import READY_FILE
from hatui.lab.pve.cluster import OFFLINE_FILE


@dataclass(frozen=True)
class EmulatorInfo:
    pid: int
    url: str
    host: str
    port: int
    fingerprint: str
    ca_file: Path
    token_id: str
    token_secret_file: Path
    root_password_file: Path
    state_dir: Path
    nodes: tuple[str, ...]

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


class EmulatorError(RuntimeError):
    pass


class EmulatorProcess:
    def __init__(
        self,
        state_dir: Path,
        *,
        nodes: Sequence[str] = ("pve1", "pve2"),
        listen: str = "127.0.0.1:0",
        extra_args: Iterable[str] = (),
        python: str = sys.executable,
        startup_timeout: float = 30.0,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.nodes = tuple(nodes)
        self.listen = listen
        self.extra_args = list(extra_args)
        self.python = python
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._info: EmulatorInfo | None = None

    @property
    def info(self) -> EmulatorInfo:
        if self._info is None:
            raise EmulatorError("emulator not started")
        return self._info

    def start(self) -> EmulatorInfo:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        ready = self.state_dir / READY_FILE
        ready.unlink(missing_ok=True)
        out = open(self.state_dir / "stdout.log", "ab")
        cmd = [self.python, "-m", "hatui.lab.pve", "--state-dir", str(self.state_dir), "--listen", self.listen, "--nodes", ",".join(self.nodes), *self.extra_args]
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EmulatorError(f"emulator exited with {self.proc.returncode}: {self._tail()}")
            if ready.exists():
                try:
                    data = json.loads(ready.read_text())
                except ValueError:
                    data = {}
                if data.get("pid") == self.proc.pid:
                    self._info = EmulatorInfo(
                        pid=data["pid"],
                        url=data["url"],
                        host=data["host"],
                        port=int(data["port"]),
                        fingerprint=data["fingerprint"],
                        ca_file=Path(data["ca_file"]),
                        token_id=data["token_id"],
                        token_secret_file=Path(data["token_secret_file"]),
                        root_password_file=Path(data["root_password_file"]),
                        state_dir=self.state_dir,
                        nodes=tuple(data["nodes"]),
                    )
                    return self._info
            time.sleep(0.05)
        self.stop()
        raise EmulatorError(f"emulator did not become ready within {self.startup_timeout:.0f}s: {self._tail()}")

    def _tail(self) -> str:
        try:
            text = (self.state_dir / "stdout.log").read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-5:])

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)

    def restart(self) -> EmulatorInfo:
        self.stop()
        return self.start()

    def token_secret(self) -> str:
        return self.info.token_secret_file.read_text().strip()

    def root_password(self) -> str:
        return self.info.root_password_file.read_text().strip()

    def set_offline(self, nodes: Iterable[str]) -> None:
        """Mark nodes unreachable (595); an empty list brings all back."""
        path = self.state_dir / OFFLINE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(f"{n}\n" for n in nodes))
        os.replace(tmp, path)

    def __enter__(self) -> "EmulatorProcess":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
