"""Faults and recoveries, from the keys (failover, failback), the VMs pane (power), `:fault` and the
palette: plan first (sends nothing), show exactly what will run where, and only on Yes execute
exactly the planned action. The worker only posts `FaultDone`; the app hands it to `done()`."""

from __future__ import annotations

from hatui.config import FAULTS, RECOVERIES, RECOVERY
from hatui.ui.messages import FaultDone


class Faults:
    def __init__(self, app) -> None:
        self.app = app
        self.last: dict[str, tuple[str, str]] = {}  # pair -> (action, target) injected from the UI

    def _for_stack(self, pair: str, action: str) -> str:
        """A native pair has no VM to stop: the lab's default fault falls back to heartbeat."""
        if action == "stop-vm" and self.app.lab.pairs[pair].stack != "virtual":
            return "stop-heartbeat"
        return action

    def failover(self, pair: str) -> None:
        drill = self.app.lab.drill
        self.request(pair, self._for_stack(pair, drill.fault), drill.fault_target, yes_label="Yes, fail over")

    def failback(self, pair: str) -> None:
        """Undo the last fault injected on `pair` (the lab's default fault if none was)."""
        drill = self.app.lab.drill
        action, target = self.last.get(pair, (drill.fault, drill.fault_target))
        action = self._for_stack(pair, action)
        self.request(pair, RECOVERY.get(action, action), target, yes_label="Yes, fail back")

    def inject(self, pair: str, action: str, target: str = "master") -> None:
        """Any fault or recovery by name (`:fault`, the palette)."""
        label = "Yes, fail back" if action in RECOVERIES else "Yes, inject the fault"
        self.request(pair, action, target, yes_label=label)

    def request(self, pair: str, action: str, target: str, *, yes_label: str = "Yes") -> None:
        app = self.app
        if app.refuse_if_read_only(f"{action} on {pair}"):
            return
        try:
            fault = app.core.plan_fault(pair, action, target)
        except Exception as exc:
            app.notify(str(exc), severity="error", markup=False)
            return
        app.confirm(fault.confirmation, yes_label=yes_label, title=f"{action} on {fault.host} ({pair})",
                    then=lambda: app.run_worker(self._execute(fault), group="fault", exit_on_error=False))

    async def _execute(self, fault) -> None:
        if self.app.read_only:
            return
        try:
            outcome = await self.app.core.execute(fault)
        except Exception as exc:
            self.app.post_message(FaultDone(fault, error=f"{type(exc).__name__}: {exc}"))
        else:
            self.app.post_message(FaultDone(fault, outcome=outcome))

    def done(self, message: FaultDone) -> None:
        fault, app = message.action, self.app
        if message.error or (message.outcome is not None and not message.outcome.ok):
            detail = message.error or message.outcome.detail
            app.notify(f"{fault.description} failed: {detail}", severity="error", timeout=10, markup=False)
            return
        app.notify(f"done: {fault.description}. {fault.expect}", timeout=8, markup=False)
        if fault.action in FAULTS:
            pair = app.lab.pairs[fault.pair]
            target = {pair.master: "master", pair.slave: "slave"}.get(fault.host, fault.host)
            self.last[fault.pair] = (fault.action, target)
        elif fault.action in RECOVERIES:
            self.last.pop(fault.pair, None)
