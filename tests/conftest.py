"""Shared pytest fixtures."""

import os
from pathlib import Path

import pytest


# --- captured tool outputs used by the parsers' tests --------------------------------------------

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """tests/fixtures: real captured outputs, line 1 of each naming where it was captured."""
    return FIXTURES_DIR


@pytest.fixture(scope="session")
def read_fixture(fixtures_dir):
    """read_fixture(name) -> the file's text without its provenance line (line 1)."""

    def read(name: str) -> str:
        text = (fixtures_dir / name).read_text(encoding="utf-8")
        return text.split("\n", 1)[1] if "\n" in text else ""

    return read


# --- the local lab (real namespaces, Heartbeat, sshd, nginx; needs root) --------------------------

def lab_unavailable_reason() -> str | None:
    """Why the local lab cannot be built here, or None."""
    if os.geteuid() != 0:
        return "the local lab needs root"
    from hatui.lab.preflight import kernel_problems, missing_requirements

    missing = missing_requirements() + kernel_problems()
    return "missing for the local lab: " + "; ".join(missing) if missing else None


def require_lab() -> None:
    """Skip (locally) or fail (CI=true: a skipped lab test in CI is a failure) when the lab cannot run."""
    reason = lab_unavailable_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"lab tests cannot run in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def lab_session():
    """The lab of ./lab.toml, brought up once per session and taken down at the end."""
    require_lab()
    from hatui.config import load_lab
    from hatui.lab import build as ops

    import fcntl

    # One lab per machine: test sessions that need it take turns (the lock is released on exit).
    lock = open("/run/hatui-lab-session.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    model = load_lab(Path(__file__).resolve().parents[1] / "lab.toml")
    try:
        ops.up(model, out=lambda line: None)
        yield model
    finally:
        try:
            ops.down(model)
        finally:
            lock.close()


@pytest.fixture
def lab(lab_session):
    """The session's lab, up (built again if a test took it down; otherwise a ~0.1 s check)."""
    from hatui.lab import build as ops

    if not (lab_session.state_dir / "lab-state.json").exists():
        ops.up(lab_session, out=lambda line: None)
    return lab_session
