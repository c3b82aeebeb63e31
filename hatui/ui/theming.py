"""Themes from TOML files, registered as Textual themes.

Where themes come from, in order (a later file with the same `name` replaces an earlier one):

1. the built-in themes shipped as package data in ``hatui/ui/themes/*.toml``
   (hatui-dark, hatui-light, hatui-contrast, hatui-amber);
2. ``themes/*.toml`` in the directory of the lab file (the repository's ``themes/`` folder for
   the repository's ``lab.toml``): the place for your own themes.

A theme file holds the fields of `textual.theme.Theme` at top level (``name``, ``primary``,
``background``, ``dark``...), an optional ``description``, and a ``[variables]`` table of extra
CSS variables (hatui reads ``sev-ok``, ``sev-warn`` and ``sev-alert``). A file that cannot be
used is reported (one warning for all of them) and skipped; the app still starts.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

BUILTIN_DIR = Path(__file__).parent / "themes"
DEFAULT_THEME = "hatui-dark"

_COLOUR_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground",
                  "background", "surface", "panel", "boost")
_NUMBER_FIELDS = ("luminosity_spread", "text_alpha")
_OTHER_FIELDS = ("name", "dark", "variables", "description")
ALLOWED = set(_COLOUR_FIELDS) | set(_NUMBER_FIELDS) | set(_OTHER_FIELDS)


class ThemeFileError(Exception):
    pass


@dataclass
class LoadedThemes:
    themes: list[Theme]
    failures: list[str]  # "path: why", one per file that was skipped


def theme_dirs(lab_path: Path | str | None = None) -> list[Path]:
    dirs = [BUILTIN_DIR]
    if lab_path is not None:
        dirs.append(Path(lab_path).resolve().parent / "themes")
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def theme_from_toml(text: str, source: str = "<theme>") -> Theme:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThemeFileError(f"not valid TOML: {exc}") from None
    unknown = sorted(set(data) - ALLOWED)
    if unknown:
        raise ThemeFileError(f"unknown key(s) {', '.join(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ThemeFileError("missing name")
    if "primary" not in data:
        raise ThemeFileError("missing primary colour")
    kwargs: dict = {"name": name.strip()}
    for key in _COLOUR_FIELDS:
        if key in data:
            kwargs[key] = _colour(data[key], key)
    for key in _NUMBER_FIELDS:
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ThemeFileError(f"{key}: expected a number")
            kwargs[key] = float(value)
    if "dark" in data:
        if not isinstance(data["dark"], bool):
            raise ThemeFileError("dark: expected true or false")
        kwargs["dark"] = data["dark"]
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ThemeFileError("[variables]: expected a table of strings")
    for key in ("sev-ok", "sev-warn", "sev-alert"):
        if key in variables:
            _colour(variables[key], f"variables.{key}")
    kwargs["variables"] = dict(variables)
    return Theme(**kwargs)


def _colour(value, key: str) -> str:
    if not isinstance(value, str):
        raise ThemeFileError(f"{key}: expected a colour string")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ThemeFileError(f"{key}: {value!r} is not a colour") from None
    return value


def load_themes(dirs: list[Path]) -> LoadedThemes:
    themes: dict[str, Theme] = {}
    failures: list[str] = []
    for directory in dirs:
        for path in sorted(directory.glob("*.toml")):
            try:
                theme = theme_from_toml(path.read_text(encoding="utf-8"), str(path))
            except (OSError, UnicodeDecodeError) as exc:
                failures.append(f"{path}: cannot read ({exc})")
                continue
            except ThemeFileError as exc:
                failures.append(f"{path}: {exc}")
                continue
            themes[theme.name] = theme
    return LoadedThemes(list(themes.values()), failures)


def install_themes(app, wanted: str | None, dirs: list[Path]) -> tuple[list[str], list[str]]:
    """Register the themes found in `dirs` with `app` and switch to `wanted` (DEFAULT_THEME when it
    is unknown). Returns the hatui theme names and what could not be loaded."""
    loaded = load_themes(dirs)
    failures = list(loaded.failures)
    for theme in loaded.themes:
        app.register_theme(theme)
    wanted = wanted or DEFAULT_THEME
    if wanted not in app.available_themes:
        failures.append(f"theme {wanted!r} not found; using {DEFAULT_THEME}")
        wanted = DEFAULT_THEME if DEFAULT_THEME in app.available_themes else "textual-dark"
    app.theme = wanted
    return [t.name for t in loaded.themes], failures

