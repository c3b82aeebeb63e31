"""A fake core for tests, snapshots, benchmarks and demos: no network, fixed data.

`FakeCore` has the `Core` surface the UI uses (`hatui.session_protocol.CoreProtocol`) and
records every call that would change the cluster in `sent`. Its readings come from
hatui.ui.fake_cluster; nothing in it depends on the clock.
"""

from __future__ import annotations

import asyncio
import collections
import copy
from pathlib import Path
from typing import Any, Callable

from hatui.collectors.cluster import ClusterState
from hatui.config import Lab
from hatui.drill.events import CommandSent
from hatui.drill.faults import FaultOutcome, ReadOnlyError, plan_fault
from hatui.ui.fake_cluster import TAKEN_AT, demo_state, fake_lab

class FakeCore:
    """The UI-facing surface of `hatui.core.Core`, with canned readings and recorded actions."""

    def __init__(self, lab: Lab | None = None, *, state: ClusterState | None = None, read_only: bool = False,
                 results_dir: Path | None = None, poll_delay_s: float = 0.0, with_vms: bool = False):
        self.lab = lab or fake_lab()
        self.read_only = read_only
        self.results_dir = results_dir or Path("/nonexistent/hatui-fake/results")
        self.state = state if state is not None else demo_state(self.lab)
        self.poll_delay_s = poll_delay_s
        self.polls = 0
        self.sent: list[tuple[str, Any]] = []  # ("execute", FaultAction) / ("run_drill", plan)
        self.commands: collections.deque[CommandSent] = collections.deque(maxlen=1000)
        self.command_listeners: list[Callable[[CommandSent], None]] = []
        self.drill_script: list[Any] | None = None  # events run_drill emits (numbers: sleep that long)
        self.drill_hold = False  # after the script, wait for `stop` (a drill still running)
        self.vms: list[dict] | None = None
        if with_vms:
            self.vms = [{"name": h.name, "vmid": h.vm.vmid, "node": h.vm.node, "status": "running",
                         "cpu": 0.03, "mem": 200 * 2**20, "maxmem": 512 * 2**20, "uptime": 3600}
                        for h in self.lab.vms]

    def can_list_vms(self) -> bool:
        return self.lab.proxmox is not None and self.vms is not None

    async def list_vms(self) -> list:
        return copy.deepcopy(self.vms or [])

    async def poll(self, pairs: list[str] | None = None, timeout: float | None = None) -> ClusterState:
        if self.poll_delay_s:
            await asyncio.sleep(self.poll_delay_s)
        self.polls += 1
        return copy.deepcopy(self.state)

    def plan_fault(self, pair: str, action: str, target: str = "master"):
        return plan_fault(self.lab, pair, action, target)

    async def execute(self, fault) -> FaultOutcome:
        if self.read_only:
            raise ReadOnlyError(fault.description.lower())
        self.sent.append(("execute", fault))
        self.log_command(fault.host, fault.command, 0, 0.01)
        return FaultOutcome(fault, True, 0.0, 0.01, "done")

    async def run_drill(self, plan, on_event, stop: asyncio.Event | None = None, journal=None):
        if self.read_only:
            raise ReadOnlyError("run a drill")
        self.sent.append(("run_drill", plan))
        for event in self.drill_script or []:
            if stop is not None and stop.is_set():
                break
            if isinstance(event, (int, float)):
                await asyncio.sleep(event)
                continue
            on_event(event)
        if stop is not None and (self.drill_script is None or self.drill_hold):
            await stop.wait()
        return None

    async def run_load(self, spec, probe=None, on_event: Callable[[Any], None] | None = None,
                       stop: asyncio.Event | None = None):
        """A real load run against `spec.url` (tests serve it locally); nothing on the cluster changes."""
        if self.read_only:
            raise ReadOnlyError("run a load run")
        from hatui.core import run_plain_load

        return await run_plain_load(spec, probe, on_event, stop)

    def log_command(self, host: str, command: str, exit_status: int | None, duration_s: float,
                    error: str | None = None) -> CommandSent:
        event = CommandSent(host=host, command=command, exit_status=exit_status, duration_s=duration_s,
                            error=error, t=0.0, wall=TAKEN_AT)
        self.commands.append(event)
        for listener in self.command_listeners:
            listener(event)
        return event

    async def close(self) -> None:
        pass


def demo_results(lab: Lab) -> list:
    """Two finished runs (native, 50 conn/s) with fixed figures."""
    from hatui.drill.plan import RunKey
    from hatui.drill.results import PhaseResult, RunResult

    out = []
    for rep, (down_fo, down_fb, err_fo) in enumerate([(580.0, 410.0, 13), (620.0, 450.0, 15)], 1):
        phases = {
            "failover": PhaseResult("failover", 0.0, 24.0, 1200, 1200 - err_fo + 2, 1200 - err_fo, {"connrefused": err_fo},
                                    100.0 * (1200 - err_fo) / 1200, down_fo, 10.0),
            "failback": PhaseResult("failback", 24.0, 40.0, 800, 795, 794, {"connrefused": 6},
                                    100.0 * 794 / 800, down_fb, 10.0),
        }
        out.append(RunResult(key=RunKey("native", "native", 50.0, rep), connections=2000, fault="stop-heartbeat",
                             started_wall=TAKEN_AT, status="ok", phases=phases, total=None, timeline=[], per_second=[]))
    return out


def demo_drill_events(lab: Lab, *, seconds: int = 28) -> list:
    """A drill half way through its second run: fault at 10 s, outage of about 1 s, recovery at 24 s."""
    from hatui.drill import events as ev
    from hatui.drill.plan import make_plan
    from hatui.drill.results import Mark

    plan = make_plan(lab, stacks=["native"], rates=[50], repeat=2, conns=2000)
    first, second = demo_results(lab)[0], plan.runs[1]

    def mark(run_id: str, name: str, at_s: float) -> ev.TimelineMark:
        return ev.TimelineMark(run_id=run_id, point=Mark(name, at_s, TAKEN_AT + at_s), t=0.0, wall=TAKEN_AT)

    out: list[Any] = [ev.DrillStarted(total_runs=len(plan.runs), plan=plan, t=0.0, wall=TAKEN_AT),
                      ev.DrillRunFinished(run_id=first.run_id, result=first, t=0.0, wall=TAKEN_AT),
                      ev.DrillRunStarted(key=second.key, index=2, total=len(plan.runs), connections=2000,
                                         fault="stop-heartbeat", t=0.0, wall=TAKEN_AT),
                      ev.PhaseChanged(run_id=second.run_id, phase="failover", t=0.0, wall=TAKEN_AT)]
    attempted = success = replies = 0
    errors = {"connrefused": 0, "client-timo": 0}
    for t in range(seconds):
        if t == 10:
            out.append(mark(second.run_id, "fault-sent", 10.0))
        if t == 11:
            out.append(mark(second.run_id, "vip-moved", 10.8))
        if t == 24:
            out.append(mark(second.run_id, "recovery-sent", 24.0))
            out.append(ev.PhaseChanged(run_id=second.run_id, phase="failback", t=0.0, wall=TAKEN_AT))
        ok, refused, timo = 50, 0, 0
        if t == 10:
            ok, refused, timo = 29, 19, 2
        elif t == 24:
            ok, refused = 44, 6
        attempted += 50
        success += ok
        replies += ok
        errors["connrefused"] += refused
        errors["client-timo"] += timo
        second_counts = {"t": t, "attempted": 50, "success": ok, "errors": {"connrefused": refused, "client-timo": timo}}
        out.append(ev.LoadProgress(run_id=second.run_id, elapsed_s=t + 1.0, attempted=attempted, replies=replies,
                                   success=success, errors=dict(errors), second=second_counts, t=0.0, wall=TAKEN_AT))
    return out
