"""hatui's terminal UI (Textual). The only package allowed to import Textual.

Run it with `hatui [--lab FILE] [--theme NAME] [--read-only]`, or on canned data with
`python -m hatui.ui.demo`. Embed it with `HatuiApp(core, theme=..., read_only=...)` where `core`
is a `hatui.core.Core` (or `hatui.ui.fake.FakeCore` for tests).

Modules: `app` (layout, pane switching, theme, read-only, wiring), the panes with their own data,
workers and handlers (`panes`: base, Nodes, DRBD, Heartbeat; `vms_pane`, `drill_pane` with
`drill_form`, `charts_pane`, `log_pane`), `polling` (cluster readings), `faults` (faults and
recoveries), `prompt` (the `/` and `:` line), `palette`, `widgets` (live tables, title/tab/key bars),
`modals` (confirmation, help), `messages` (what workers post), and the Textual-free helpers `model`
(rows), `drillview` (drill state from the runner's events), `loadrun`, `commandline` (`:` commands),
`format`, `theming` (themes/*.toml). The core it drives: `hatui.session_protocol.CoreProtocol`.
"""
