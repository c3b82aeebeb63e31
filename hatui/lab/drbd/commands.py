"""`drbdadm` and `drbdsetup` of the DRBD stand-in, executed inside its daemon.

The client (hatui.lab.drbd.client) sends argv over the control socket; this module parses it
like drbd-utils 9 does, acts on the daemon's resources and answers with stdout/stderr frames
and an exit code. Texts and exit codes are DRBD's (see shared/fixtures/drbd-cli-errors.txt):

    drbdadm status [RES]                   drbdsetup status [RES|all] [--verbose] [--statistics] [--json]
    drbdadm role|cstate|dstate RES         drbdsetup events2 [RES|all] [--now] [--statistics] [--timestamps]
    drbdadm primary [--force] RES          drbdsetup role RES / cstate RES PEER / dstate MINOR
    drbdadm secondary RES                  drbdsetup primary RES [--force] / secondary RES
    drbdadm connect [--discard-my-data] RES   drbdsetup connect RES PEER [--discard-my-data]
    drbdadm disconnect RES                 drbdsetup disconnect RES PEER
    drbdadm up|down|invalidate|adjust RES  drbdsetup down RES / invalidate MINOR
    drbdadm sh-resources                   (RES may be "all" where DRBD allows it; "RES:PEER" accepted)

A refused drbdadm action prints drbdsetup's message (`r0: State change failed: (-2) Need access
to UpToDate data`) and `Command 'drbdsetup primary r0' terminated with exit code 17`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hatui.lab.drbd import formats, wire
from hatui.lab.drbd.daemon import Daemon, Resource, Subscriber
from hatui.lab.drbd.errors import ERR_MINOR_INVALID, ERR_RES_NOT_KNOWN, DrbdError, failure

USAGE_RC = 1
VERSION = "9.28.0"                 # the drbd-utils whose formats are imitated
KERNEL_VERSION = "9.2.12"


class Out:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.err: list[str] = []

    def print(self, text: str = "") -> None:
        self.out.append(text + "\n")

    def error(self, text: str) -> None:
        self.err.append(text + "\n")


async def run(daemon: Daemon, header: dict[str, Any], reader: asyncio.StreamReader,
              writer: asyncio.StreamWriter) -> None:
    prog = header.get("prog", "drbdadm")
    argv = [str(a) for a in header.get("argv", [])]
    tty = bool(header.get("tty"))
    columns = int(header.get("columns") or 80) if tty else 80
    out = Out()
    try:
        if prog == "drbdsetup" and argv and argv[0] == "events2" and "--now" not in argv:
            await _events2_stream(daemon, argv[1:], reader, writer)
            return
        if prog == "drbdsetup":
            rc = await drbdsetup(daemon, argv, out, tty=tty, columns=columns)
        else:
            rc = await drbdadm(daemon, argv, out, tty=tty, columns=columns)
    except Exception as exc:  # never leave the client hanging
        out.error(f"{prog}: internal error in the DRBD stand-in: {type(exc).__name__}: {exc}")
        rc = 20
    if out.out:
        writer.write(wire.frame({"out": "".join(out.out)}))
    if out.err:
        writer.write(wire.frame({"err": "".join(out.err)}))
    writer.write(wire.frame({"rc": rc}))


# --------------------------------------------------------------------------------------------
# argv helpers


def _split(args: list[str]) -> tuple[list[str], set[str]]:
    """(positional arguments, long/short options) - options may come anywhere."""
    pos, opts = [], set()
    for a in args:
        if a == "--":
            continue
        if a.startswith("--"):
            opts.add(a.split("=", 1)[0])
        elif a.startswith("-") and len(a) > 1 and not a[1:].isdigit():
            for ch in a[1:]:
                opts.add("-" + ch)
        else:
            pos.append(a)
    return pos, opts


def _resource(daemon: Daemon, name: str) -> Resource | None:
    return daemon.resources.get(name.split(":", 1)[0])


# --------------------------------------------------------------------------------------------
# drbdsetup


async def drbdsetup(daemon: Daemon, argv: list[str], out: Out, *, tty: bool = False, columns: int = 80) -> int:
    if not argv:
        out.error("USAGE: drbdsetup command {arguments} [options]")
        return USAGE_RC
    cmd, rest = argv[0], argv[1:]
    pos, opts = _split(rest)
    if cmd == "status":
        return _status(daemon, pos, opts, out, tty=tty, columns=columns)
    if cmd == "events2":
        return _events2_now(daemon, pos, opts, out)
    if cmd == "role":
        res = _up(daemon, pos[0] if pos else "")
        if res is None:
            out.error(f"{pos[0] if pos else ''}: {ERR_RES_NOT_KNOWN[1]}")
            return 10
        out.print(res.role)
        return 0
    if cmd == "cstate":
        res = _up(daemon, pos[0] if pos else "")
        if res is None or (len(pos) > 1 and pos[1] != str(res.cfg.peer_node_id)):
            out.error(f"{pos[0] if pos else ''}: No such connection")
            return 10
        out.print(res.conn)
        return 0
    if cmd == "dstate":
        res = next((r for r in daemon.resources.values() if r.up and pos and str(r.cfg.minor) == pos[0]), None)
        if res is None:
            out.error(f"{pos[0] if pos else ''}: No such device")
            return 10
        out.print(f"{res.disk}/{res.peer_disk}")
        return 0
    if cmd in ("primary", "secondary", "connect", "disconnect", "down", "invalidate"):
        target = pos[0] if pos else ""
        if cmd == "invalidate":
            res = next((r for r in daemon.resources.values() if str(r.cfg.minor) == target), None)
            obj = target
        else:
            res = daemon.resources.get(target)
            obj = target
        if cmd == "down" and target == "all":
            for r in daemon.resources.values():
                await r.bring_down()
            return 0
        if res is None or (not res.up and cmd != "down"):
            err = failure(ERR_MINOR_INVALID if cmd == "invalidate" else ERR_RES_NOT_KNOWN)
            out.error(f"{obj}: {err.text}")
            return err.rc
        try:
            await _act(res, cmd, opts)
        except DrbdError as exc:
            out.error(f"{obj}: {exc.text}")
            return exc.rc
        return 0
    out.error(f"drbdsetup: unknown command '{cmd}'")
    return 20


def _up(daemon: Daemon, name: str) -> Resource | None:
    res = _resource(daemon, name)
    return res if res is not None and res.up else None


async def _act(res: Resource, cmd: str, opts: set[str]) -> None:
    if cmd == "primary":
        await res.promote(force="--force" in opts or "--overwrite-data-of-peer" in opts)
    elif cmd == "secondary":
        await res.demote()
    elif cmd == "connect":
        await res.connect(discard_my_data="--discard-my-data" in opts)
    elif cmd == "disconnect":
        await res.disconnect()
    elif cmd == "down":
        await res.bring_down()
    elif cmd == "invalidate":
        await res.invalidate()
    elif cmd == "up":
        await res.bring_up()


def _status(daemon: Daemon, pos: list[str], opts: set[str], out: Out, *, tty: bool, columns: int) -> int:
    name = pos[0] if pos else "all"
    names = None if name == "all" else {name}
    snaps = daemon.snapshots(names)
    json_out = "--json" in opts or "-j" in opts
    verbose = "--verbose" in opts or "-v" in opts
    statistics = "--statistics" in opts or "-s" in opts
    if json_out:
        out.out.append(formats.status_json(snaps))
    elif snaps or name == "all":
        out.out.append(formats.status_text(snaps, verbose=verbose, statistics=statistics,
                                           width=columns, tty=tty))
    if names and not snaps:
        out.error(f"{name}: No such resource")
        return 10
    return 0


def _events2_opts(pos: list[str], opts: set[str]) -> tuple[set[str] | None, bool, bool]:
    name = pos[0] if pos else "all"
    return (None if name == "all" else {name}), ("--statistics" in opts or "-s" in opts or "--full" in opts), \
        ("--timestamps" in opts or "-T" in opts)


def _stamp(lines: list[str], timestamps: bool) -> list[str]:
    if not timestamps:
        return lines
    now = time.time()
    frac = f"{now % 1:.6f}"[1:]
    tz = time.strftime("%z")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)) + frac + tz[:3] + ":" + tz[3:]
    return [f"{stamp} {line}" for line in lines]


def _events2_now(daemon: Daemon, pos: list[str], opts: set[str], out: Out) -> int:
    names, statistics, timestamps = _events2_opts(pos, opts)
    for line in _stamp(formats.events2_lines(daemon.snapshots(names), statistics=statistics), timestamps):
        out.print(line)
    return 0


async def _events2_stream(daemon: Daemon, args: list[str], reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
    pos, opts = _split(args)
    names, statistics, timestamps = _events2_opts(pos, opts)
    sub = Subscriber(names, statistics, timestamps)
    sub.last = daemon.snapshots(names)
    daemon.subscribers.add(sub)
    gone = asyncio.get_running_loop().create_task(reader.read(1))   # EOF: the client went away
    try:
        first = formats.events2_lines(sub.last, statistics=statistics)
        writer.write(wire.frame({"out": "".join(line + "\n" for line in _stamp(first, timestamps))}))
        await writer.drain()
        while True:
            getter = asyncio.get_running_loop().create_task(sub.queue.get())
            done, _ = await asyncio.wait({getter, gone}, return_when=asyncio.FIRST_COMPLETED)
            if gone in done:
                getter.cancel()
                return
            lines = getter.result()
            writer.write(wire.frame({"out": "".join(line + "\n" for line in _stamp(lines, timestamps))}))
            await writer.drain()
    except (ConnectionError, OSError):
        return
    finally:
        daemon.subscribers.discard(sub)
        gone.cancel()


# --------------------------------------------------------------------------------------------
# drbdadm


_ADM_ACTIONS = ("primary", "secondary", "connect", "disconnect", "up", "down", "invalidate", "adjust")


async def drbdadm(daemon: Daemon, argv: list[str], out: Out, *, tty: bool = False, columns: int = 80) -> int:
    # global options before the command
    i = 0
    dry_run = False
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] in ("-d", "--dry-run"):
            dry_run = True
        if argv[i] in ("-c", "--config-file", "-t", "--config-to-test") and i + 1 < len(argv):
            i += 1
        i += 1
    if i >= len(argv):
        out.error("\nUSAGE: drbdadm COMMAND [OPTION...] {all|RESOURCE...}\n")
        return USAGE_RC
    cmd, rest = argv[i], argv[i + 1:]
    pos, opts = _split(rest)
    if cmd in ("-V", "--version", "version"):
        out.print(f"DRBDADM_BUILDTAG=hatui-drbd-standin\nDRBDADM_API_VERSION=2\nDRBD_KERNEL_VERSION={KERNEL_VERSION}"
                  f"\nDRBDADM_VERSION={VERSION}")
        return 0
    if cmd == "sh-resources":
        out.print(" ".join(sorted(daemon.resources)))
        return 0
    names = pos or (["all"] if cmd == "status" else [])
    if not names:
        out.error(f"drbdadm {cmd}: missing resource name (use 'all' for every resource)")
        return USAGE_RC
    targets: list[str] = []
    for n in names:
        if n == "all":
            targets += sorted(daemon.resources)
        elif _resource(daemon, n) is None:
            out.error(f"'{n.split(':', 1)[0]}' not defined in your config (for this host).")
            return 10
        else:
            targets.append(n.split(":", 1)[0])
    if cmd == "status":
        if pos == [] or pos == ["all"]:
            args = ["all"]
        else:
            args = targets
        rc = 0
        for arg in args:
            rc = max(rc, _status(daemon, [arg], opts, out, tty=tty, columns=columns))
        return rc
    if cmd in ("role", "cstate", "dstate"):
        rc = 0
        for name in targets:
            res = daemon.resources[name]
            if not res.up:
                out.error(f"{name}: {ERR_RES_NOT_KNOWN[1]}")
                rc = 10
            elif cmd == "role":
                out.print(res.role)
            elif cmd == "cstate":
                out.print(res.conn)
            else:
                out.print(f"{res.disk}/{res.peer_disk}")
        return rc
    if cmd not in _ADM_ACTIONS:
        out.error(f"drbdadm: Unknown command '{cmd}'")
        return 20
    rc = 0
    for name in targets:
        res = daemon.resources[name]
        setup = _setup_command(res, cmd, opts)
        if dry_run:
            out.print(setup)
            continue
        if cmd == "adjust":
            if not res.up:
                cmd_rc = await _adm_act(res, "up", opts, out, setup)
                rc = max(rc, cmd_rc)
            continue
        if cmd == "down" and not res.up:
            continue
        rc = max(rc, await _adm_act(res, cmd, opts, out, setup))
    return rc


async def _adm_act(res: Resource, cmd: str, opts: set[str], out: Out, setup: str) -> int:
    if cmd != "up" and not res.up:
        err = failure(ERR_MINOR_INVALID if cmd == "invalidate" else ERR_RES_NOT_KNOWN)
        obj = str(res.cfg.minor) if cmd == "invalidate" else res.name
        out.error(f"{obj}: {err.text}")
        out.error(f"Command '{setup}' terminated with exit code {err.rc}")
        return err.rc
    try:
        await _act(res, cmd, opts)
    except DrbdError as exc:
        obj = str(res.cfg.minor) if cmd == "invalidate" else res.name
        out.error(f"{obj}: {exc.text}")
        out.error(f"Command '{setup}' terminated with exit code {exc.rc}")
        return exc.rc
    return 0


def _setup_command(res: Resource, cmd: str, opts: set[str]) -> str:
    c = res.cfg
    if cmd == "primary":
        return f"drbdsetup primary {c.name}" + (" --force" if "--force" in opts else "")
    if cmd == "connect":
        return f"drbdsetup connect {c.name} {c.peer_node_id}" + (
            " --discard-my-data" if "--discard-my-data" in opts else "")
    if cmd == "disconnect":
        return f"drbdsetup disconnect {c.name} {c.peer_node_id}"
    if cmd == "invalidate":
        return f"drbdsetup invalidate {c.minor}"
    if cmd in ("up", "adjust"):
        return f"drbdsetup new-resource {c.name} {c.node_id}"
    return f"drbdsetup {cmd} {c.name}"
