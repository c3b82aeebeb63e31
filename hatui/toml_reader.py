"""Reading a parsed TOML document into typed values while collecting problems, not raising.

Each problem carries the key path (e.g. `pairs.native.vip`) and, found on a best-effort map of
the text (tomllib keeps no positions), the line that sets it. Keys whose names look like secrets
are refused: secrets never live in a lab file. Used by hatui.config.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Problem:
    path: str
    message: str
    line: int | None = None



REQUIRED = object()
SECRET_WORDS = ("secret", "password", "passphrase", "private_key")


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value:g}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'string "{shown}"'
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


class Reader:
    """Reads typed values out of the parsed TOML, collecting problems instead of raising."""

    def __init__(self, text: str):
        self.problems: list[Problem] = []
        self._lines = KeyLines(text)

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message, self._lines.find(path)))

    def table(self, data: dict, path: str, allowed: list[str] | None, required: bool = False,
              label: str | None = None) -> dict | None:
        """`data[path]` as a table; `label` is its full key path when `data` is itself nested."""
        value = get(data, path)
        path = label or path
        if value is None:
            if required:
                self.problem(path, "missing table: expected a [" + path + "] section")
            return None
        if not isinstance(value, dict):
            self.problem(path, f"expected a table, found {describe(value)}")
            return None
        if allowed is not None:
            self.unknown_keys(value, path, allowed)
        return value

    def unknown_keys(self, table: dict, path: str, allowed: list[str]) -> None:
        for key in table:
            if key in allowed:
                continue
            full = f"{path}.{key}" if path else key
            if any(word in key.lower() for word in SECRET_WORDS):
                self.problem(full, "secrets must not be written inline in the lab file: "
                             "use a *_env (environment variable name) or *_file (path) key")
                continue
            near = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"; did you mean '{near[0]}'?" if near else f"; known keys: {', '.join(allowed)}"
            self.problem(full, f"unknown key{hint}")

    def value(self, table: dict, path: str, key: str, kind: str, default: Any = REQUIRED,
              check: Callable[[Any], str | None] | None = None) -> Any:
        """Read `table[key]` as `kind` (str, int, number, bool, list[str], list[number], list[int])."""
        full = f"{path}.{key}" if path else key
        if key not in table:
            if default is REQUIRED:
                self.problem(full, f"missing: expected {KIND_NAMES[kind]}")
                return None
            return default
        raw = table[key]
        if not is_kind(raw, kind):
            self.problem(full, f"expected {KIND_NAMES[kind]}, found {describe(raw)}")
            return None if default is REQUIRED else default
        if check is not None:
            message = check(raw)
            if message:
                self.problem(full, message)
                return None if default is REQUIRED else default
        return float(raw) if kind == "number" else raw


KIND_NAMES = {
    "str": "a string",
    "int": "an integer",
    "number": "a number",
    "bool": "true or false",
    "list[str]": "a list of strings",
    "list[number]": "a list of numbers",
    "list[int]": "a list of integers",
    "table[str]": "a table of strings",
}


def is_kind(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind.startswith("list["):
        inner = kind[5:-1]
        return isinstance(value, list) and all(is_kind(v, inner) for v in value)
    if kind == "table[str]":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    raise ValueError(kind)


def get(data: dict, path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def positive(value: Any) -> str | None:
    return None if 0 < value < math.inf else f"expected a positive number, found {value:g}"


def port_number(value: int) -> str | None:
    return None if 0 < value < 65536 else f"expected a port number 1..65535, found {value}"


def one_of(options: tuple[str, ...]) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if value in options:
            return None
        near = difflib.get_close_matches(value, options, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        return f"expected one of {', '.join(options)}, found \"{value}\"{hint}"
    return check


NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
# Linux takes up to 15 characters but no '/', ':' or whitespace; names also reach shell commands,
# so only these characters.
INTERFACE_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,14}")


def interface_name(name: str) -> str | None:
    if INTERFACE_NAME_RE.fullmatch(name):
        return None
    return f"bad interface name \"{name}\": use a letter then letters, digits, ., - or _ (at most 15)"


def check_name(reader: Reader, path: str, name: str) -> None:
    if not NAME_RE.fullmatch(name):
        reader.problem(path, f"bad name \"{name}\": use a letter then letters, digits, - or _ (at most 32)")


class KeyLines:
    """Best-effort map from a key path to the line of lab.toml that sets it (tomllib keeps none)."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-\".' ]+?)\s*=")

    def __init__(self, text: str):
        self.entries: list[tuple[str, int]] = []
        current = ""
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                current = self._norm(header.group(1))
                self.entries.append((current, number))
                continue
            key = self._KEY.match(line)
            if key:
                dotted = self._norm(key.group(1))
                full = f"{current}.{dotted}" if current else dotted
                self.entries.append((full, number))
                # keys of an inline table on the same line
                for inner in re.finditer(r"[{,]\s*([A-Za-z0-9_\-]+)\s*=", line):
                    self.entries.append((f"{full}.{inner.group(1)}", number))

    @staticmethod
    def _norm(key: str) -> str:
        return ".".join(part.strip().strip('"').strip("'") for part in key.split("."))

    def find(self, path: str) -> int | None:
        best, best_len = None, -1
        for key, number in self.entries:
            if (path == key or path.startswith(key + ".")) and len(key) > best_len:
                best, best_len = number, len(key)
        return best
