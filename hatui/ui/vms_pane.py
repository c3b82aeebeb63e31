"""The VMs pane: the Proxmox VMs of lab.toml with their state from the Proxmox API, polled every
few cluster refreshes, and the VM power keys (both ask first)."""

from __future__ import annotations

from typing import Iterable

from textual import work
from textual.widget import Widget

from hatui.ui import model
from hatui.ui.messages import VmsListed, while_mounted
from hatui.ui.panes import Pane, styled
from hatui.ui.widgets import LiveTable, Quiet, key_bindings

VM_POLL_EVERY = 5  # VM listing every 5 cluster refreshes


class VmsPane(Pane):
    pane_id, title, number = "vms", "VMs", 4
    BINDINGS = key_bindings("vms")

    def __init__(self) -> None:
        super().__init__()
        self.vms: list | None = None
        self.status = ""
        self._listing = False  # a VM listing is in flight

    def build(self) -> Iterable[Widget]:
        yield Quiet("", id="vms-status", classes="hint")
        yield LiveTable(model.VM_COLUMNS, id="vms-table")

    def start(self) -> None:
        """Show the VMs of lab.toml, then their state as the core reports it."""
        self.show_vms(None, self.status_text())
        self.refresh_vms()

    def status_text(self) -> str:
        if self.app.lab.proxmox is None:
            return "Proxmox is not configured in lab.toml: there are no VMs to show."
        if not self.app.core.can_list_vms():
            return ("Proxmox VM state is not available in this hatui yet; "
                    "the VMs below are as lab.toml describes them.")
        if self.app.read_only:
            return "VM state from the Proxmox API."
        return (f"VM state from the Proxmox API ({self.app.key_for('vm.stop', 'x')} stop, "
                f"{self.app.key_for('vm.start', 'o')} start; both ask first).")

    def refresh_vms(self) -> None:
        if self.app.core.can_list_vms() and not self._listing:
            self._listing = True
            self._list_vms()

    @work(group="vms", exit_on_error=False)
    async def _list_vms(self) -> None:
        try:
            vms = await self.app.core.list_vms()
        except Exception as exc:
            self.post_message(VmsListed(error=f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(VmsListed(vms=list(vms or [])))

    @while_mounted
    def on_vms_listed(self, message: VmsListed) -> None:
        self._listing = False
        if message.error:
            self.show_vms(self.vms, f"Proxmox not available: {message.error}")
        else:
            self.show_vms(message.vms, self.status_text())
        self.set_timer(self.app.refresh_s * VM_POLL_EVERY, self.refresh_vms, name="vm-poll")

    def show_vms(self, vms: list | None, status: str) -> None:
        self.vms, self.status = vms, status
        self.restyle()

    def restyle(self) -> None:
        if not self.ready:
            return
        self.query_one("#vms-status", Quiet).show(self.status)
        self.query_one(LiveTable).sync(styled(self.app, model.vm_rows(self.app.lab, self.vms)))

    def selected_pair(self) -> str | None:
        vm = self.selected_key()
        for pair in self.app.lab.pairs.values():
            if vm in (pair.master, pair.slave):
                return pair.name
        return None

    def action_vm_power(self, kind: str) -> None:
        vm, pair = self.selected_key(), self.selected_pair()
        if not vm or not pair:
            self.app.notify("select a VM first", severity="warning")
            return
        self.app.faults.request(pair, "stop-vm" if kind == "stop" else "start-vm", vm,
                                yes_label="Yes, power off" if kind == "stop" else "Yes, start")
