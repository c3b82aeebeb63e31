"""`hatui vms ...`: list, create, start/stop and snapshot the lab's Proxmox VMs.

The connection comes from lab.toml's [proxmox] (endpoint, token id, secret file or variable, CA
file or pinned fingerprint). Flags and the environment override it, field by field:

    --endpoint / HATUI_PVE_ENDPOINT          https://pve1.lab:8006
    --token-id / HATUI_PVE_TOKEN_ID          hatui@pve!tui
    --token-secret-file / HATUI_PVE_TOKEN_SECRET_FILE, else env HATUI_PVE_TOKEN_SECRET
    --ca-file / HATUI_PVE_CA_FILE, --fingerprint / HATUI_PVE_FINGERPRINT, --insecure

`create` with no --vmid builds the lab's VMs (hosts with a `vm` table) idempotently: a matching VM
is left alone, a different one is reported and never changed. VMs are named by their lab.toml
host name or VMID; `--all` means the lab's VMs (never the whole cluster). A lab VM whose VMID holds
a VM of another name is refused. stop, shutdown, rollback and delete-snapshot on `--all` ask first
(on a terminal) or need `--yes`; `--dry-run` prints the requests and sends none.
Exit codes: 0 ok, 2 an error (API, task, config), 3 a refusal (VM differs from the spec or from
lab.toml, locked, not confirmed).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hatui.commands import add_json_option, add_lab_option, error_fields, examples, print_json
from hatui.errors import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, HatuiError, RefusedError, UsageError

SCHEMA = "hatui.vms/1"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "vms", help="list, create, start/stop and snapshot the Proxmox VMs",
        description="The lab's Proxmox VMs through the API. The connection comes from lab.toml [proxmox];\n"
                    "the flags below (or HATUI_PVE_* variables) replace its fields one by one.\n"
                    "VMs are named by lab.toml host name or VMID; --all means the lab's VMs.\n"
                    "A lab VM whose VMID holds a VM of another name is refused (exit 3).",
        epilog=examples("hatui vms create && hatui vms start --all", "hatui vms list --json",
                        "hatui vms snapshot clean --all",
                        "hatui vms --endpoint https://pve1:8006 --token-id 'hatui@pve!cli' list",
                        more="Exit codes: 0 ok, 2 an error (API, task, config),\n"
                             "3 a refusal (a VM differs from its spec or from lab.toml, is locked, or\n"
                             "--all was not confirmed)."))
    add_lab_option(parser)
    conn = parser.add_argument_group("Proxmox API (default: lab.toml [proxmox]; flags and HATUI_PVE_* override it)")
    conn.add_argument("--endpoint", default=os.environ.get("HATUI_PVE_ENDPOINT"), help="https://HOST:8006")
    conn.add_argument("--token-id", default=os.environ.get("HATUI_PVE_TOKEN_ID"), help="USER@REALM!TOKENID")
    conn.add_argument("--token-secret-file", default=os.environ.get("HATUI_PVE_TOKEN_SECRET_FILE"), metavar="FILE",
                      help="file holding the token secret (else $HATUI_PVE_TOKEN_SECRET)")  # fmt: skip
    conn.add_argument("--ca-file", default=os.environ.get("HATUI_PVE_CA_FILE"), metavar="FILE", help="CA to verify the server with")
    conn.add_argument("--fingerprint", default=os.environ.get("HATUI_PVE_FINGERPRINT"), help="pinned SHA-256 of the server certificate")
    conn.add_argument("--insecure", action="store_true", help="do NOT verify TLS (prints a warning)")
    conn.add_argument("--timeout", type=float, default=None, help="seconds per API request [lab.toml or 15]")
    actions = parser.add_subparsers(dest="vms_action", metavar="ACTION", required=True,
                                    parser_class=type("VmsActionParser", (_AnyOrder, type(parser)), {}))

    p = actions.add_parser("list", help="VMs with state, node, uptime, CPU, memory and snapshots",
                           description="Every VM in the cluster with its state, node, uptime, CPU, memory and\n"
                                       "snapshots (* marks the one the current state derives from).",
                           epilog=examples("hatui vms list", "hatui vms list --no-snapshots --json"))
    add_lab_option(p)
    add_json_option(p, SCHEMA)
    p.add_argument("--no-snapshots", action="store_true", help="skip the per-VM snapshot lookups")

    p = actions.add_parser("create", help="create the lab's VMs from lab.toml (identical VMs are left alone, "
                                          "different ones reported), or one VM with --vmid",
                           description="Create the lab's VMs (hosts with a vm table in lab.toml), idempotently: an\n"
                                       "identical VM is left alone, a different one is reported (exit 3) and never\n"
                                       "changed. With --vmid, one VM from the flags instead.",
                           epilog=examples("hatui vms create", "hatui vms create vm01a vm01b",
                                           "hatui vms create --vmid 200 --name scratch --node pve1 --memory 1024"))
    add_lab_option(p)
    add_json_option(p, SCHEMA)
    p.add_argument("vms", nargs="*", metavar="VM", help="only these lab VMs (name or VMID) [all of them]")
    p.add_argument("--vmid", type=int, help="create one VM from flags instead of lab.toml")
    p.add_argument("--name")
    p.add_argument("--node")
    p.add_argument("--cores", type=int, default=1)
    p.add_argument("--memory", type=int, default=512, metavar="MB")
    p.add_argument("--disk", type=int, action="append", metavar="GB", help="disk size, repeatable [50 and 10]")
    p.add_argument("--nic", action="append", metavar="BRIDGE", help="bridge of each NIC, repeatable [vmbr0 and vmbr1]")
    p.add_argument("--storage", default="local-lvm")

    for name, (text, description, *lines) in TARGET_ACTIONS.items():
        p = actions.add_parser(name, help=text, description=description, epilog=examples(*lines))
        if name in ("snapshot", "rollback", "delete-snapshot"):
            p.add_argument("snapname", help="snapshot name")
        _targets(p)
        if name in DESTRUCTIVE:
            p.add_argument("--yes", action="store_true", help="with --all: do not ask first (needed without a terminal)")
    actions.choices["snapshot"].add_argument("--vmstate", action="store_true", help="include RAM (running VMs)")
    actions.choices["rollback"].add_argument("--start", action="store_true",
                                             help="start the VM after a rollback without RAM")
    parser.set_defaults(func=run)


class _AnyOrder:
    """Parser mixin: options may come between positionals (`vms snapshot NAME --vmstate VM`)."""

    _mixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._mixing:  # parse_known_intermixed_args calls back in here
            return super().parse_known_args(args, namespace)
        self._mixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._mixing = False


# Actions that take a VM down or lose state: with --all they ask first (or need --yes).
DESTRUCTIVE = ("stop", "shutdown", "rollback", "delete-snapshot")

# The actions on named VMs: help, description, examples.
TARGET_ACTIONS = {
    "start": ("start VMs", "Start VMs; one that runs already is left alone.",
              "hatui vms start --all", "hatui vms start vm01a --json"),
    "stop": ("stop VMs (hard power-off)", "Stop VMs at once, like pulling the plug (shutdown asks through ACPI).\n"
             "With --all it asks first on a terminal; elsewhere it needs --yes.",
             "hatui vms stop vm01a", "hatui vms stop --all --dry-run", "hatui vms stop --all --yes"),
    "shutdown": ("shut VMs down (ACPI)", "Shut VMs down through ACPI and wait until they have stopped.\n"
                 "With --all it asks first on a terminal; elsewhere it needs --yes.",
                 "hatui vms shutdown 101 102"),
    "snapshot": ("snapshot VMs", "Take a snapshot of VMs (with their RAM if --vmstate).",
                 "hatui vms snapshot clean --all", "hatui vms snapshot before-drill vm01a --vmstate"),
    "rollback": ("roll VMs back to a snapshot (a running VM is stopped first)",
                 "Roll VMs back to a snapshot; a running VM is stopped first.\n"
                 "With --all it asks first on a terminal; elsewhere it needs --yes.",
                 "hatui vms rollback clean --all --start", "hatui vms rollback clean --start vm01a --dry-run"),
    "delete-snapshot": ("delete a snapshot of VMs", "Delete a snapshot of VMs.\n"
                        "With --all it asks first on a terminal; elsewhere it needs --yes.",
                        "hatui vms delete-snapshot clean --all --yes"),
}


def _targets(p: argparse.ArgumentParser) -> None:
    add_lab_option(p)
    add_json_option(p, SCHEMA)
    p.add_argument("vms", nargs="*", metavar="VM", help="lab.toml host name or VMID")
    p.add_argument("--all", action="store_true", help="the lab's VMs (hosts with a vm table in lab.toml)")
    p.add_argument("--dry-run", action="store_true", help="print the requests it would send; send none")


# --------------------------------------------------------------------------------------------
# Connection


def _load_lab(args: argparse.Namespace):
    """The lab of --lab, or None when no lab file is given or the default one does not exist."""
    from hatui.config import load_lab

    path = getattr(args, "lab", None)
    if path is None:
        return None
    if not Path(path).exists():
        if path == "lab.toml":  # the default: fine to go without when flags give the connection
            return None
        raise UsageError(f"--lab: {path} does not exist")
    return load_lab(path)


def _settings(args: argparse.Namespace, lab):
    """lab.toml's [proxmox], with each flag (or HATUI_PVE_* variable) given replacing its field."""
    from hatui.proxmox import DEFAULT_SECRET_ENV, DEFAULT_TIMEOUT, PveSettings
    from hatui.vms import lab_settings

    px = lab.proxmox if lab is not None else None
    flags = (args.endpoint, args.token_id, args.token_secret_file, args.ca_file, args.fingerprint, args.timeout)
    if px is not None and not args.insecure and not any(v is not None for v in flags):
        return lab_settings(lab)  # says "is the lab up?" when the local lab's secret file is missing
    endpoint = args.endpoint or (px.endpoint if px else None)
    token_id = args.token_id or (px.token_id if px else None)
    if not endpoint or not token_id:
        where = f"{lab.path} has no [proxmox] section; " if lab is not None else "no lab file; "
        raise UsageError(f"vms: {where}give --endpoint and --token-id (or HATUI_PVE_ENDPOINT and HATUI_PVE_TOKEN_ID)")
    secret_file = args.token_secret_file or (px.token_secret_file if px else None)
    secret_env = (px.token_secret_env if px and px.token_secret_env else DEFAULT_SECRET_ENV)
    ca_file = args.ca_file or (str(px.ca_file) if px and px.ca_file else None)
    fingerprint = args.fingerprint or (px.fingerprint if px else None)
    timeout = args.timeout or (px.timeout_s if px else DEFAULT_TIMEOUT)
    verify = not args.insecure and (px.verify_tls if px else True)
    return PveSettings.load(endpoint, token_id, secret_env=secret_env, secret_file=secret_file, verify_tls=verify,
                            ca_file=ca_file, fingerprint=fingerprint, timeout=timeout)


def _client(args: argparse.Namespace, lab):
    from hatui.core import Core

    return Core(lab, pve_settings=_settings(args, lab)).proxmox_client()


# --------------------------------------------------------------------------------------------
# Running


def run(args: argparse.Namespace) -> int:
    lab = _load_lab(args)
    action = args.vms_action
    if action not in ("list", "create"):  # usage first, before any connection
        if args.all and args.vms:
            raise UsageError(f"vms {action}: name VMs or pass --all, not both")
        if not args.all and not args.vms:
            raise UsageError(f"vms {action}: name the VMs (VMID or name) or pass --all")
        if args.all and (lab is None or not lab.vms):
            where = f"{lab.path} describes no VMs (hosts with a vm table)" if lab is not None else "no lab file"
            raise UsageError(f"vms {action} --all: {where}; --all means the lab's VMs, never the whole cluster: name the VMs")
        if getattr(args, "snapname", None) is not None:
            from hatui.proxmox import check_snapname

            check_snapname(args.snapname)
        if action in DESTRUCTIVE and args.all and not args.yes and not args.dry_run:
            _confirm(action, lab)
    client = _client(args, lab)
    if action == "list":
        return _list(client, args)
    if action == "create":
        return _create(client, args, lab)
    return _each(client, args, lab)


def _confirm(action: str, lab) -> None:
    """Ask on the terminal before a destructive action on every lab VM; refuse (exit 3) without one."""
    names = ", ".join(f"{h.name} ({h.vm.vmid})" for h in lab.vms)
    what = f"vms {action} --all would {action} {len(lab.vms)} VM(s): {names}"
    if not sys.stdin.isatty():
        raise RefusedError(f"{what}; not on a terminal to ask: pass --yes (or --dry-run); nothing sent")
    print(f"{what}. Go on? [y/N] ", end="", file=sys.stderr, flush=True)  # stdout may be --json's
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise RefusedError(f"vms {action} --all: not confirmed; nothing sent")


class _Progress:
    """A task's progress on one line (rewritten in place on a terminal, silent otherwise)."""

    def __init__(self, label: str, stream=None) -> None:
        self.label = label
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.shown = False

    def __call__(self, p) -> None:
        if not self.tty:
            return
        self.stream.write(f"\r  {self.label}: {p.type} {p.status} {p.elapsed:4.1f}s ")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


class _Outcomes:
    """Each VM's outcome: printed as it comes, or gathered into one JSON object (--json)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json, self.action = args.json, args.vms_action
        self.vms: list[dict] = []
        self.codes: list[int] = []

    def progress(self, label: str) -> _Progress:
        return _Progress(label, stream=sys.stderr if self.json else None)  # stdout is for the JSON

    def ok(self, entry: dict, line: str, notes=()) -> None:
        self.codes.append(EXIT_OK)
        if self.json:
            self.vms.append({**entry, "ok": True, "notes": list(notes)})
            return
        print(line)
        for note in notes:
            print(f"  note: {note}")

    def failed(self, entry: dict, exc: HatuiError) -> None:
        """A failure (a failed task with the last lines of its log, a VM that differs from its spec)."""
        self.codes.append(exc.exit_code)
        if self.json:
            self.vms.append({**entry, "ok": False, **error_fields(exc)})
            return
        print(f"{entry['label']}: {exc}", file=sys.stderr)
        log_tail = getattr(exc, "log_tail", None)
        if log_tail:
            print(f"  task log ({exc.upid}), last {len(log_tail)} line(s):", file=sys.stderr)
            for line in log_tail:
                print(f"    {line}", file=sys.stderr)
        for diff in getattr(exc, "differences", []) or []:
            print(f"  differs: {diff}", file=sys.stderr)

    def finish(self) -> int:
        """The worst exit code: an error (2) before a refusal (3)."""
        code = EXIT_USAGE if EXIT_USAGE in self.codes else EXIT_REFUSED if EXIT_REFUSED in self.codes \
            else max(self.codes, default=EXIT_OK)
        if self.json:
            print_json({"schema": SCHEMA, "ok": code == EXIT_OK, "action": self.action, "vms": self.vms})
        return code


def _task(res) -> dict:
    return {"task": res.type, "exitstatus": res.exitstatus, "seconds": round(res.elapsed, 1), "upid": res.upid}


def _create(client, args: argparse.Namespace, lab) -> int:
    from hatui.proxmox import VmSpec
    from hatui.vms import lab_vm_host, lab_vm_spec

    if args.vmid is not None:
        if not args.name or not args.node:
            raise UsageError("vms create --vmid: give --name and --node too (or leave out --vmid to create the lab's VMs)")
        specs = [VmSpec(args.name, args.vmid, args.node, cores=args.cores, memory_mb=args.memory,
                        disks_gb=args.disk or [50, 10], nics=args.nic or ["vmbr0", "vmbr1"], storage=args.storage)]  # fmt: skip
    else:
        if lab is None:
            raise UsageError("vms create: no lab file (--lab) to take the VMs from; or give --vmid, --name, --node")
        hosts = [lab_vm_host(lab, v) for v in args.vms] if args.vms else lab.vms
        if not hosts:
            raise UsageError(f"vms create: {lab.path} describes no VMs (hosts with a vm table)")
        specs = [lab_vm_spec(lab, h) for h in hosts]
    outcomes = _Outcomes(args)
    for spec in specs:
        label = f"{spec.name} ({spec.vmid}) on {spec.node}"
        entry = {"label": label, "vmid": spec.vmid, "name": spec.name, "node": spec.node}
        progress = outcomes.progress(label)
        try:
            result = client.create_vm(spec, progress=progress)
        except HatuiError as exc:
            progress.done()
            outcomes.failed(entry, exc)
            continue
        progress.done()
        if result.created:
            took = f" in {result.task.elapsed:.1f}s" if result.task else ""
            line = (f"{label}: created ({spec.cores} core, {spec.memory_mb} MB, disks "
                    f"{'+'.join(f'{g}G' for g in spec.disks_gb)}, NICs {', '.join(spec.nics)}){took}")
            entry.update(result="created", **(_task(result.task) if result.task else {}))
        else:
            line = f"{label}: already exists, matches the spec"
            entry.update(result="exists")
        outcomes.ok(entry, line, result.notes)
    return outcomes.finish()


def _call(client, action: str, vmid: int, args: argparse.Namespace, progress, expect_name: str | None):
    kw = {"expect_name": expect_name, "progress": progress}
    if action == "start":
        return client.start(vmid, **kw)
    if action == "stop":
        return client.stop(vmid, **kw)
    if action == "shutdown":
        return client.shutdown(vmid, **kw)
    if action == "snapshot":
        return client.snapshot(vmid, args.snapname, vmstate=args.vmstate, **kw)
    if action == "rollback":
        return client.rollback(vmid, args.snapname, start=args.start, **kw)
    if action == "delete-snapshot":
        return client.delete_snapshot(vmid, args.snapname, **kw)
    raise UsageError(f"vms: unknown action {action}")  # pragma: no cover - argparse restricts the choices


def _each(client, args: argparse.Namespace, lab) -> int:
    targets = _resolve(client, args, lab)
    action = args.vms_action
    outcomes = _Outcomes(args)
    for vmid, label, expect_name in targets:
        entry = {"label": label, "vmid": vmid}
        progress = outcomes.progress(label)
        try:
            if args.dry_run:
                request = _request(client.locate(vmid, expect_name=expect_name), action, args)
                outcomes.ok({**entry, "result": "dry run", "request": request}, f"{label}: would send {request}")
                continue
            if action == "start" and client.status(vmid, expect_name=expect_name).get("status") == "running":
                outcomes.ok({**entry, "result": "already running"}, f"{label}: already running")
                continue
            res = _call(client, action, vmid, args, progress, expect_name)
        except HatuiError as exc:
            progress.done()
            outcomes.failed(entry, exc)
            continue
        progress.done()
        outcomes.ok({**entry, "result": "done", **_task(res)}, f"{label}: {res.type} {res.exitstatus} ({res.elapsed:.1f}s)")
    return outcomes.finish()


def _request(resource: dict, action: str, args: argparse.Namespace) -> str:
    """The request an action sends to the VM of a cluster-resources entry (for --dry-run)."""
    base = f"/api2/json/nodes/{resource['node']}/qemu/{resource['vmid']}"
    return {"start": f"POST {base}/status/start", "stop": f"POST {base}/status/stop",
            "shutdown": f"POST {base}/status/shutdown",
            "snapshot": f"POST {base}/snapshot snapname={getattr(args, 'snapname', '')}"
                        + (" vmstate=1" if getattr(args, "vmstate", False) else ""),
            "rollback": f"POST {base}/snapshot/{getattr(args, 'snapname', '')}/rollback"
                        + (" start=1" if getattr(args, "start", False) else ""),
            "delete-snapshot": f"DELETE {base}/snapshot/{getattr(args, 'snapname', '')}"}[action]


def _resolve(client, args: argparse.Namespace, lab) -> list[tuple[int, str, str | None]]:
    """(vmid, label, name the VM must have) of the named VMs: lab.toml host names and VMIDs (their VM
    must carry the host's name), else Proxmox VMIDs and VM names (taken as found)."""
    from hatui.proxmox import ProxmoxNotFoundError
    from hatui.vms import lab_vm_host

    if args.all:  # run() made sure the lab has VMs: --all never means the whole cluster
        return [(h.vm.vmid, f"{h.name} ({h.vm.vmid})", h.name) for h in lab.vms]
    out = []
    for v in args.vms:
        if lab is not None:
            try:
                h = lab_vm_host(lab, v)
                out.append((h.vm.vmid, f"{h.name} ({h.vm.vmid})", h.name))
                continue
            except ProxmoxNotFoundError:
                if not v.isdigit() and v in lab.hosts:
                    raise
        r = client.locate(int(v) if v.isdigit() else v)
        out.append((int(r["vmid"]), f"{r.get('name', '?')} ({r['vmid']}) on {r['node']}", None))
    return out


def _list(client, args: argparse.Namespace) -> int:
    vms = client.list_vms(with_snapshots=not args.no_snapshots)
    if args.json:
        out = []
        for v in vms:
            d = {k: getattr(v, k) for k in ("vmid", "name", "node", "status", "uptime", "cpu", "cpus", "mem", "maxmem", "lock", "hastate", "tags", "parent", "snapshot_error")}
            d["snapshots"] = None if v.snapshots is None else [s.__dict__ for s in v.snapshots]
            out.append(d)
        print_json({"schema": SCHEMA, "ok": True, "action": "list", "vms": out})
        return EXIT_OK
    if not vms:
        print("no VMs (create the lab's with `hatui vms create`)")
        return EXIT_OK
    rows = []
    for v in vms:
        if v.snapshots is None:
            snaps = f"? ({v.snapshot_error})" if v.snapshot_error else "-"
        else:
            snaps = ", ".join(s.name + ("*" if s.name == v.parent else "") for s in v.snapshots) or "-"
        rows.append((str(v.vmid), v.name, v.node, v.status + (f" [{v.lock}]" if v.lock else ""), _uptime(v.uptime),
                     f"{v.cpu * 100:.1f}%", f"{v.mem // 1048576}/{v.maxmem // 1048576}M", snaps))
    header = ("VMID", "NAME", "NODE", "STATE", "UPTIME", "CPU", "MEM", "SNAPSHOTS")
    minimum = (5, 12, 8, 8, 8, 6, 13, 0)  # the widths the table always had
    widths = [max(m, *(len(r[i]) for r in rows)) for i, m in enumerate(minimum)]
    right = (True, False, False, False, True, True, True, False)
    for row in (header, *rows):
        cells = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row[:-1], widths, right)]
        print(f"{cells[0]}  {' '.join(cells[1:6])} {cells[6]}  {row[-1]}".rstrip())
    return EXIT_OK


def _uptime(seconds: int) -> str:
    if not seconds:
        return "-"
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"
