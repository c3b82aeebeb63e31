"""hatui's terminal UI (Textual). The only package allowed to import Textual.

Run it with `hatui [--lab FILE] [--theme NAME] [--read-only]`, or on canned data with
`python -m hatui.ui.demo`. Embed it with `HatuiApp(core, theme=..., read_only=...)` where `core`
is a `hatui.core.Core` (or `hatui.ui.fake.FakeCore` for tests).

Modules: `app` (the app, its keys and workers), `panes` / `drill_pane` (the seven panes),
`widgets` (live tables, title/tab/key bars), `modals` (confirmation, help), `messages` (what
workers post), and the Textual-free helpers `model` (rows), `drillview` (drill state from the
runner's events), `loadrun`, `commandline` (`:` commands), `format`, `theming` (themes/*.toml).
"""
