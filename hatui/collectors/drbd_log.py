"""DRBD messages that are not status: kernel log lines and failing drbdadm/drbdsetup commands.

* `parse_drbd_kernel_log(text)` -> `ResultList[DrbdLogEvent]`: the DRBD lines of dmesg/syslog
  (8.3/8.4 prefixes ``block drbdN:``, ``d-con <res>:``, ``drbd <res>:``; 9.x
  ``drbd <res>[/<vol> drbd<minor>][ <peer>]:``), with state-change tokens ``conn( A -> B )``
  split out, and split brain / unrelated data / refused state changes flagged.  Other lines of
  the log are ignored.
* `parse_drbdadm_errors(text)` -> `ResultList[DrbdCommandError]`: ``Failure: (127) ...``,
  ``State change failed: (-2) ...``, ``Command '...' terminated with exit code 11``, module/
  userland version mismatch.

Same conventions as `hatui.collectors.drbd`: never raises; ``problems`` on the returned list
(non-empty input without a single DRBD line gives a problem).  Timestamps are kept as printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hatui.collectors.drbd import CONN_WAITING, REPL_SYNC, REPL_VERIFY
from hatui.collectors.severity import ResultList, Severity, clean_text

OK, WARN, ALERT = Severity.OK, Severity.WARN, Severity.ALERT


@dataclass
class DrbdLogEvent:
    timestamp: str | None  # as printed: "Sep  7 19:56:52", "526517.668034", "Thu Feb 15 ..."
    resource: str | None
    minor: int | None
    volume: int | None
    peer: str | None
    message: str
    kind: str  # state_change | split_brain | unrelated_data | state_change_failed |
    #            resync_started | resync_done | helper | message
    changes: dict[str, tuple[str, str]] = field(default_factory=dict)  # conn: (old, new)
    severity: Severity = Severity.OK
    reason: str = ""


_SYSLOG = r"(?P<syslog>[A-Z][a-z]{2}\s+\d{1,2}\s+\d\d:\d\d:\d\d)\s+\S+\s+kernel:\s*"
_KERNEL = re.compile(
    rf"^(?:{_SYSLOG})?(?:\[(?P<bracket>[^\]]*)\]\s*)?"
    r"(?:block drbd(?P<bminor>\d{1,9})|d-con (?P<dcon>\S+)"
    r"|drbd (?P<res>[^\s/:]+)(?:/(?P<vol>\d{1,9}))?(?: drbd(?P<minor>\d{1,9}))?(?: (?P<peer>[^\s:]+))?)"
    r":\s?(?P<msg>.*)$")
_CHANGE = re.compile(r"([a-z][\w-]*)\(\s*([^()]*?)\s*->\s*([^()]*?)\s*\)")

_SB_HELPER = re.compile(r"(?<![\w-])split-brain\b")
_ALERT_STATES = {"StandAlone", "Failed", "Diskless"}
_WARN_STATES = (CONN_WAITING | REPL_SYNC | REPL_VERIFY
                | {"Outdated", "Inconsistent", "DUnknown", "Consistent", "Attaching",
                   "Detaching", "Negotiating", "Ahead", "Behind", "Unknown"})


def parse_drbd_kernel_log(text: Any) -> ResultList:
    try:
        return _parse_kernel(text)
    except Exception as exc:  # never let a parser bug escape
        return ResultList(problems=[f"internal parser error: {type(exc).__name__}: {exc}"])


def _parse_kernel(raw: Any) -> ResultList:
    text, problems = clean_text(raw)
    events = []
    for line in text.split("\n"):
        m = _KERNEL.match(line.strip())
        if m:
            events.append(_event(m))
    if not events and text.strip():
        problems.append("no DRBD kernel messages found")
    return ResultList(events, problems=problems, format="kernel-log")


def _event(m: re.Match) -> DrbdLogEvent:
    msg = m.group("msg").strip()
    ts = m.group("syslog") or (m.group("bracket") or "").strip() or None
    minor = m.group("bminor") or m.group("minor")
    ev = DrbdLogEvent(timestamp=ts, resource=m.group("dcon") or m.group("res"),
                      minor=int(minor) if minor else None,
                      volume=int(m.group("vol")) if m.group("vol") else None,
                      peer=m.group("peer"), message=msg, kind="message")
    if "Split-Brain detected" in msg:
        # "... but unresolved, dropping connection!" / 8.3 "..., dropping connection!" vs
        # "..., automatically solved. Sync from ..." / "..., manually solved. ..."
        solved = re.search(r"(?:automatically|manually) solved", msg) is not None
        ev.kind, ev.severity = "split_brain", WARN if solved else ALERT
        ev.reason = "split brain resolved" if solved else "split brain"
    elif "Unrelated data" in msg:
        ev.kind, ev.severity, ev.reason = "unrelated_data", ALERT, "unrelated data"
    elif msg.startswith("State change failed"):
        ev.kind, ev.severity, ev.reason = "state_change_failed", WARN, msg
    elif msg.startswith("Began resync"):
        ev.kind, ev.severity, ev.reason = "resync_started", WARN, msg
    elif msg.startswith("Resync done"):
        ev.kind = "resync_done"
    elif msg.startswith("helper command:"):
        ev.kind = "helper"
        # "initial-split-brain" runs before auto-recovery is tried; "split-brain" only when
        # the split brain stays unresolved.
        if "exit code" not in msg:
            if _SB_HELPER.search(msg):
                ev.severity, ev.reason = ALERT, "split-brain helper called"
            elif "initial-split-brain" in msg:
                ev.severity, ev.reason = WARN, "split brain detected"
    changes = {k: (a, b) for k, a, b in _CHANGE.findall(msg)}
    if changes and ev.kind == "message":
        ev.kind, ev.changes = "state_change", changes
        for key, (_, new) in changes.items():
            sev = ALERT if new in _ALERT_STATES else WARN if new in _WARN_STATES else OK
            if sev > ev.severity:
                ev.severity, ev.reason = sev, f"{key} -> {new}"
    return ev


# --- drbdadm / drbdsetup errors ------------------------------------------------------------------

@dataclass
class DrbdCommandError:
    kind: str  # failure | state_change_failed | exit_code | version_mismatch | no_such_resource
    message: str
    minor: str | None = None  # "0" in "0: Failure: ..." (8.4 prints the minor, 9 the resource)
    code: int | None = None  # (127) / (-2)
    exit_code: int | None = None
    command: str | None = None
    detail: str = ""  # "additional info from kernel:" text
    severity: Severity = Severity.ALERT

    def explain(self) -> str:
        """One line saying what went wrong, in DRBD's words plus what the numbers mean."""
        who = f"{self.minor}: " if self.minor else ""
        if self.kind == "failure":
            text = f"{who}{self.message} (DRBD error {self.code})"
        elif self.kind == "state_change_failed":
            text = f"{who}state change refused: {self.message} ({self.code})"
        elif self.kind == "exit_code":
            text = f"{self.command} exited with {self.exit_code}"
        else:
            text = self.message
        return f"{text}; kernel says: {self.detail}" if self.detail else text


_FAILURE = re.compile(r"^(?:(?P<who>\S+): )?Failure: \((?P<code>-?\d{1,9})\) (?P<msg>.*)$")
_STATE_FAILED = re.compile(r"^(?:(?P<who>\S+): )?State change failed: \((?P<code>-?\d{1,9})\) (?P<msg>.*)$")
_EXIT = re.compile(r"^Command '(?P<cmd>.*)' terminated with exit code (?P<rc>\d{1,9})\b")
# "r0: No such resource" (drbdsetup), "'r9' not defined in your config (for this host)." (drbdadm 9)
_NO_RES = re.compile(r"^'?(?P<who>[^\s':]+)'?:? (?:No such resource|not defined in your config)")


def parse_drbdadm_errors(text: Any) -> ResultList:
    try:
        return _parse_errors(text)
    except Exception as exc:
        return ResultList(problems=[f"internal parser error: {type(exc).__name__}: {exc}"])


def _parse_errors(raw: Any) -> ResultList:
    text, problems = clean_text(raw)
    errors: list[DrbdCommandError] = []
    detail_for: DrbdCommandError | None = None
    for line in text.split("\n"):
        s = line.strip()
        if not s:
            continue
        if detail_for is not None and not _EXIT.match(s):
            detail_for.detail = (detail_for.detail + " " + s).strip()
            detail_for = None
            continue
        if s.startswith("additional info from kernel"):
            detail_for = errors[-1] if errors else None
        elif m := _FAILURE.match(s):
            errors.append(DrbdCommandError("failure", m["msg"], m["who"], int(m["code"])))
        elif m := _STATE_FAILED.match(s):
            errors.append(DrbdCommandError("state_change_failed", m["msg"], m["who"], int(m["code"])))
        elif m := _EXIT.match(s):
            rc = int(m["rc"])
            prev = errors[-1] if errors and errors[-1].exit_code is None else None
            if prev is not None and prev.kind != "version_mismatch":
                prev.exit_code, prev.command = rc, m["cmd"]
            else:
                errors.append(DrbdCommandError("exit_code", s, code=None, exit_code=rc,
                                               command=m["cmd"]))
        elif m := _NO_RES.match(s):
            errors.append(DrbdCommandError("no_such_resource", s, m["who"]))
        elif s.startswith("DRBD module version:"):
            errors.append(DrbdCommandError("version_mismatch", s, severity=Severity.WARN))
        elif "userland version:" in s and errors and errors[-1].kind == "version_mismatch":
            errors[-1].message += "; " + s
    if not errors and text.strip():
        problems.append("no drbdadm/drbdsetup error found")
    return ResultList(errors, problems=problems, format="drbdadm-errors")
