"""The repository stands alone: no file refers to a path outside it.

Users clone the repository and nothing else, so a test fixture, doc or script that reaches
for `../something` beyond the root (or an absolute path of the machine it was written on) works
only on the author's machine. This scans every text file of the tree.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Build products, caches and local results are not part of the repository.
SKIP_DIRS = {".git", ".venv", "venv", "build", "dist", "__pycache__", ".pytest_cache", ".hypothesis", "results"}
TEXT_SUFFIXES = {".py", ".sh", ".md", ".toml", ".cfg", ".txt", ".tcss", ".json", ".yml", ".yaml", ".in", ".xml",
                 ".log", ".html", ""}

RELATIVE = re.compile(r"[\w./-]*\.\./[\w./-]*")
# Absolute paths that only exist on the machines the project was written on.
# (Spelled in pieces so that this file passes its own scan.)
OLD_ENV = "HATUI_" + "SHARED"
FOREIGN = re.compile(r"(?<![\w/])/work/\w|" + OLD_ENV)
UP = ".." + "/"


def text_files(root: Path):
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts):
            continue
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            yield path


def outside_references(root: Path) -> list[str]:
    """`file:line: reference` for every reference that leaves `root`."""
    root = root.resolve()
    found = []
    for path in text_files(root):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(lines, 1):
            refs = [m.group(0) for m in RELATIVE.finditer(line)
                    if not (path.parent / m.group(0)).resolve().is_relative_to(root)]
            refs += [m.group(0) for m in FOREIGN.finditer(line)]
            found += [f"{path.relative_to(root)}:{number}: {ref}" for ref in refs]
    return found


def test_no_file_refers_outside_the_repository():
    assert outside_references(ROOT) == []


def test_the_scan_finds_outside_references(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(f"see {UP}README.md and {UP}{UP}elsewhere/docs/paper.md\n")
    (tmp_path / "conftest.py").write_text(f"import os\nos.environ.get('{OLD_ENV}')\n")
    (tmp_path / "run.sh").write_text(f"cat {'/'}work/elsewhere/x\ncat ./data/{UP}data/y\n")
    assert outside_references(tmp_path) == [
        f"conftest.py:2: {OLD_ENV}",
        f"docs/a.md:1: {UP}{UP}elsewhere/docs/paper.md",
        f"run.sh:1: {'/'}work/e",  # ./data/ going up and back down stays inside
    ]


def test_fixtures_carry_their_provenance():
    fixtures = [p for p in (ROOT / "tests" / "fixtures").rglob("*") if p.is_file() and p.name != "README.md"]
    assert fixtures
    for path in fixtures:
        first = path.read_text(encoding="utf-8").split("\n", 1)[0].lower()
        # `# source: ...` (where it was published or captured) or, for the lab captures, `# STATE: ...`
        assert first.startswith(("# source:", "<!-- source:", "# state:", "<!-- state:")), f"{path}: no provenance line"


# Repository files a source distribution need not carry: CI's entry point and git's own settings.
NOT_IN_SDIST = {".ci/run", ".gitignore", ".gitattributes"}


def repository_files() -> set[str]:
    """What the repository holds: git's list in a checkout, else the files of the unpacked sdist."""
    if (ROOT / ".git").exists():
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        return {line for line in out.splitlines() if (ROOT / line).is_file()}
    return {str(p.relative_to(ROOT)) for p in text_files(ROOT)} | {"PKG-INFO"}


def test_sdist_holds_everything_the_tests_need(tmp_path):
    """`python -m build --sdist` packs every file of the repository, so the tests run from it."""
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, text=True)
    (sdist,) = tmp_path.glob("hatui-*.tar.gz")
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        packed = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name and tar.getmember(name).isfile()}
    missing = sorted(repository_files() - NOT_IN_SDIST - packed)
    assert missing == [], f"{top} lacks {missing}"
    assert {"LICENSE", "lab.toml", "constraints.txt", "tests/conftest.py"} <= packed
