"""Every message the UI's workers, core callbacks and prompt post. Workers only post these; the
handlers (on the app, or on the pane that owns the worker) update the widgets.

Messages a pane posts to itself do not bubble: nobody above it has anything to do with them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.css.query import NoMatches
from textual.message import Message

if TYPE_CHECKING:
    from hatui.collectors.cluster import ClusterState
    from hatui.drill.events import CommandSent
    from hatui.drill.faults import FaultAction, FaultOutcome
    from hatui.drill.results import RunResult


def while_mounted(handler):
    """Skip a data handler once the app is shutting down (its widgets are gone)."""

    @functools.wraps(handler)
    def wrapper(self, *args, **kwargs):
        app = self.app
        if app._closing or app._closed:
            return None
        try:
            return handler(self, *args, **kwargs)
        except NoMatches:
            if app._closing or app._closed or not app.is_running:
                return None
            raise

    return wrapper


# --- to the app --------------------------------------------------------------------------------

@dataclass
class StatePolled(Message):
    """One cluster reading arrived."""

    state: ClusterState


@dataclass
class PollFailed(Message):
    """`Core.poll()` raised: the reading could not be taken at all."""

    error: str


@dataclass
class FaultDone(Message):
    """A fault/recovery ran (`outcome`) or could not be run (`error`)."""

    action: FaultAction
    outcome: FaultOutcome | None = None
    error: str | None = None


@dataclass
class FilterTyped(Message):
    """The `/` prompt's text changed (or was cleared)."""

    text: str


@dataclass
class PromptClosed(Message):
    """The `/` or `:` prompt closed; `command` is the `:` line entered ("" if none)."""

    command: str = ""


# --- a pane to itself --------------------------------------------------------------------------

@dataclass
class CommandLogged(Message, bubble=False):
    """The core sent a command."""

    event: CommandSent


@dataclass
class DrillEventsPending(Message, bubble=False):
    """Drill events are waiting in the Drill pane's buffer. Coalesced: one pending marker at a time,
    the handler drains the whole buffer, so a flood of events costs one UI update per batch."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DrillEventsPending)


@dataclass
class DrillEnded(Message, bubble=False):
    """The drill or load-run worker returned (`result`: the runner's outcome, or a load run's
    summary line) or failed (`error`)."""

    result: Any = None
    error: str | None = None


@dataclass
class VmsListed(Message, bubble=False):
    """The VM listing (`Core.list_vms`) or why there is none."""

    vms: list | None = None
    error: str | None = None


@dataclass
class JournalLoaded(Message, bubble=False):
    """Finished runs read from the journal file, with what could not be read."""

    results: list[RunResult]
    problems: list[str]
    source: str
