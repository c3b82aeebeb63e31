"""Every action of the UI in one table. It drives the key bindings (and lab.toml [ui] keys
remapping), the footer, the help screen, the command palette and the `:` command line; read-only
mode hides and refuses every action marked `mutating`. No Textual here.

A row's key runs `action_<action>(*args)` on its owner (the app, or the pane whose key it is);
the palette calls that same method. A `:` command calls `command_<name>(command)` on the app when
it takes words, else the row's action.
"""

from __future__ import annotations

from dataclasses import dataclass

PANES = ("nodes", "drbd", "heartbeat", "vms", "drill", "charts", "log")
PANE_TITLES = {"nodes": "Nodes", "drbd": "DRBD", "heartbeat": "Heartbeat", "vms": "VMs", "drill": "Drill",
               "charts": "Charts", "log": "Log"}
HELP_SECTIONS = ("Panes", "Actions", "General")


@dataclass(frozen=True)
class UiAction:
    id: str = ""  # binding id, for lab.toml [ui] keys = { <id> = "KEY" } ("" = no key of its own)
    key: str = ""  # default key; for a key hatui does not bind (action ""), the text the help shows
    help: str = ""  # the help screen's line ("" = not listed); {fault} {fault_target}: lab.toml's
    section: str = "Actions"
    action: str = ""  # the method the key and the palette run: action_<action>(*args) on `owner`
    args: tuple[str, ...] = ()
    owner: str = "app"  # "app", or the pane id whose key it is (live while that pane has the focus)
    footer: str = ""  # the footer's label ("" = not in the footer)
    pinned: bool = False  # the footer always keeps it, however narrow the terminal
    priority: bool = False
    mutating: bool = False  # changes the cluster: hidden and refused in read-only mode
    palette: str = ""  # the palette's title ("" = not in the palette)
    palette_help: str = ""  # {key}: the key in effect
    command: str = ""  # `:` command name
    usage: str = ""  # `:` usage (the name alone when empty)
    aliases: tuple[str, ...] = ()
    nargs: tuple[int, int] = (0, 0)  # how many words the `:` command takes

    @property
    def binding_action(self) -> str:
        """The action as Textual's bindings spell it."""
        return f"{self.action}({', '.join(map(repr, self.args))})" if self.args else self.action


def _pane_rows() -> list[UiAction]:
    return [UiAction(f"pane.{name}", str(i), f"{PANE_TITLES[name]} pane", "Panes", "show_pane", (name,),
                     palette=f"Pane: {PANE_TITLES[name]}", palette_help=f"show the {PANE_TITLES[name]} pane (key {{key}})")
            for i, name in enumerate(PANES, 1)]


ACTIONS: tuple[UiAction, ...] = (
    *_pane_rows(),
    UiAction("pane.next", "tab", "next pane (also →)", "Panes", "next_pane", priority=True),
    UiAction("pane.prev", "shift+tab", "previous pane (also ←)", "Panes", "prev_pane", priority=True),
    UiAction(key="↑ ↓ pgup pgdn", help="move in a table", section="Panes"),
    UiAction(command="fault", usage="fault PAIR ACTION [master|slave|HOST]", aliases=("f",), nargs=(2, 3),
             mutating=True),
    UiAction("failover", "f", "fail over the selected pair: {fault} on its {fault_target} (asks first)",
             action="failover", footer="failover", mutating=True),
    UiAction("failback", "b", "fail back: undo the last fault on the selected pair (asks first)",
             action="failback", footer="failback", mutating=True, command="failback", usage="failback [PAIR]",
             aliases=("b",), nargs=(0, 1)),
    UiAction("drill", "d", "start a drill with the Drill pane's parameters (asks first)", action="drill",
             footer="drill", mutating=True, palette="Drill: start",
             palette_help="with the Drill pane's parameters (asks first)", command="drill",
             usage="drill [stacks=native,virtual] [rates=10,20] [repeat=N] [conns=N] [fault=NAME]"),
    UiAction("abort", "a", "abort the running drill or load run (the runner recovers the cluster)",
             action="abort", footer="abort drill", mutating=True, palette="Drill: abort",
             palette_help="stop the running drill (it recovers the cluster)", command="abort"),
    UiAction("load", "l", "plain load run, no fault, at the Drill pane's first rate (asks first)", action="load",
             footer="load", mutating=True, palette="Load run",
             palette_help="plain load run on the selected pair's VIP (asks first)", command="load"),
    UiAction(command="pane", usage="pane NAME|1-7", aliases=("p",), nargs=(1, 1)),
    UiAction(command="theme", usage="theme NAME", aliases=("t",), nargs=(1, 1)),
    UiAction(command="filter", usage="filter [TEXT]", nargs=(0, 999)),
    UiAction("vm.stop", "x", "VMs pane: power off the selected VM (asks first)", action="vm_power", args=("stop",),
             owner="vms", footer="stop VM", mutating=True),
    UiAction("vm.start", "o", "VMs pane: start the selected VM (asks first)", action="vm_power", args=("start",),
             owner="vms", footer="start VM", mutating=True),
    UiAction("drbd.problems", "P", "DRBD pane: problems only", action="toggle_problems", owner="drbd",
             footer="problems", palette="DRBD: problems only (toggle)", palette_help="hide healthy DRBD resources",
             command="problems"),
    UiAction("drill.edit", "e", "Drill pane: edit the parameters (enter/escape: done)", action="edit",
             owner="drill", footer="edit"),
    UiAction("refresh", "r", "refresh now", action="refresh", palette="Refresh now",
             palette_help="poll the cluster now ({key})", command="refresh", aliases=("r",)),
    UiAction("screenshot", "ctrl+s", "save an SVG screenshot", action="screenshot"),
    UiAction("filter", "slash", "filter every table (escape clears)", "General", "filter", footer="filter",
             palette="Filter rows…", palette_help="type to filter every table ({key})"),
    UiAction("command-line", "colon", "command line (see below)", "General", "command_line", footer="cmd",
             palette="Command line…", palette_help="the : command line"),
    UiAction(key="ctrl+p", help="command palette: panes, themes, faults, drill…", section="General"),
    UiAction("help", "question_mark", "this help", "General", "help", footer="help", pinned=True,
             palette="Help: keys", palette_help="every key ({key})", command="help", aliases=("h",)),
    UiAction("quit", "q", "quit (asks first while a drill runs)", "General", "quit_app", footer="quit",
             pinned=True, palette="Quit", palette_help="leave hatui ({key})", command="quit", aliases=("q",)),
    UiAction(key="ctrl+q", help="quit at once", section="General"),
)

BY_ID = {row.id: row for row in ACTIONS if row.id}
COMMANDS = {row.command: row for row in ACTIONS if row.command}
ALIASES = {alias: row.command for row in ACTIONS for alias in row.aliases}
MUTATING_ACTIONS = frozenset(row.action for row in ACTIONS if row.mutating and row.action)
PINNED_IDS = frozenset(row.id for row in ACTIONS if row.pinned)


def usage(command: str) -> str:
    return COMMANDS[command].usage or command


def keyed(owner: str) -> list[UiAction]:
    """The rows whose key binding lives on `owner` (the app or a pane id)."""
    return [row for row in ACTIONS if row.action and row.owner == owner]


def help_sections(key_for, read_only: bool, lab) -> list[tuple[str, list[tuple[str, str]]]]:
    """The help screen: every key in effect by section, then every `:` command. `key_for(id)` gives
    the key in effect; read-only mode leaves out what it refuses."""
    shown = [row for row in ACTIONS if not (read_only and row.mutating)]
    names = {"fault": lab.drill.fault, "fault_target": lab.drill.fault_target}
    sections = [(section, [(key_for(row.id) if row.action else row.key, row.help.format(**names))
                           for row in shown if row.help and row.section == section])
                for section in HELP_SECTIONS]
    sections.append(("Command line", [(f":{usage(row.command)}", "") for row in shown if row.command]))
    return sections


def help_footer(read_only: bool) -> str:
    first = ("READ-ONLY: nothing that changes the cluster can run." if read_only else
             "Every fault, failback, VM power change and drill shows exactly what will run where and defaults to No.")
    return first + "\nKeys can be changed in lab.toml: [ui] keys = { failover = \"F\" } (binding ids as in this list)."

