"""Every message the UI's workers and core callbacks post. Workers only post these; handlers
on the app update the widgets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class StatePolled(Message):
    """One cluster reading arrived (`ClusterState`)."""

    state: Any


@dataclass
class PollFailed(Message):
    """`Core.poll()` raised: the reading could not be taken at all."""

    error: str


@dataclass
class CommandLogged(Message):
    """The core sent a command (`CommandSent`)."""

    event: Any


@dataclass
class DrillEventsPending(Message):
    """Drill events are waiting in the app's buffer. Coalesced: one pending marker at a time, the
    handler drains the whole buffer, so a flood of events costs one UI update per batch."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DrillEventsPending)


@dataclass
class DrillEnded(Message):
    """The drill worker returned (`result`) or failed (`error`)."""

    result: Any = None
    error: str | None = None


@dataclass
class FaultDone(Message):
    """A fault/recovery ran (`FaultOutcome`) or could not be run (`error`)."""

    action: Any
    outcome: Any = None
    error: str | None = None


@dataclass
class VmsListed(Message):
    """The VM listing (list of dicts/objects) or why there is none."""

    vms: list | None = None
    error: str | None = None


@dataclass
class JournalLoaded(Message):
    """Finished runs read from the journal file (`RunResult`s), with unreadable-line counts."""

    results: list
    problems: list[str]
    source: str
