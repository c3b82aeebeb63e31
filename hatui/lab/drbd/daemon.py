"""The DRBD stand-in's replicator: one process per lab host, the host's "DRBD kernel module".

It runs as its own process through hatui.lab.drbd.replicator, which gives it the drbdadm and
drbdsetup of hatui.lab.drbd.commands to answer on its control socket.

It is a stand-in (the lab's kernel has no DRBD): it keeps each resource's volume in a plain
file and replicates it to the peer's daemon over TCP on the replication network, with DRBD's
semantics where the console can see them:

* roles Primary/Secondary; promotion asks the peer first (a second Primary is refused unless
  `allow_two_primaries`; a peer that does not answer within the timeout is disconnected, as
  DRBD 9's cluster-wide state change does); promotion needs an UpToDate disk (or `--force`);
* protocol C: an application write is acknowledged once it is on the local volume *and* the
  peer has stored it; while the peer is unreachable writes complete locally and their 4 KiB
  blocks are marked in the out-of-sync bitmap;
* connection states StandAlone / Connecting / Connected (NetworkFailure, Timeout, BrokenPipe,
  TearDown, Disconnecting on the way); the lower node-id dials, the other listens; pings detect
  a dead link;
* on connect a handshake compares data generations (hatui.lab.drbd.meta.decide): no sync,
  SyncSource/SyncTarget of the merged bitmaps at `resync_rate_kib` (progress observable as
  `done:`), split brain (both sides StandAlone, the `split-brain` helper event, kernel-log
  lines), resolved by `connect --discard-my-data` on the victim; unrelated data;
* the activity log: after a crash of a Primary its hot 4 MiB extents are resynced;
* `drbdadm`/`drbdsetup` run through the control socket (hatui.lab.drbd.client) and print DRBD
  9's formats (hatui.lab.drbd.formats) with DRBD's error texts and exit codes;
* application I/O (the write service) goes through the same socket: `write`/`read` ops.

Not modelled: more than one peer or volume per resource, verify, pause-sync, protocols' finer
differences (A acknowledges after the local write; B like C), a Primary that is SyncTarget,
fencing/quorum, attach/detach of disks other than by up/down.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from hatui.lab.drbd import formats, wire
from hatui.lab.drbd.errors import (ERR_MINOR_EXISTS, ERR_MINOR_INVALID, ERR_NET_CONFIGURED, ERR_RES_NOT_KNOWN,
                                   SS_NO_UP_TO_DATE_DISK, SS_RESYNC_RUNNING, SS_TWO_PRIMARIES, DrbdError, failure,
                                   state_change_failed)
from hatui.lab.drbd.meta import (BLOCK, EXTENT, NONE, SOURCE, SPLIT_BRAIN, TARGET, UNRELATED, Bitmap, Meta, Side,
                                 decide, new_uuid)

REPLICATING = ("Established", "SyncSource", "SyncTarget")


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass
class ResourceConfig:
    name: str
    minor: int
    device: str
    volume: str                  # volume file (a relative path is relative to the daemon's cwd)
    size_kib: int
    port: int
    node_id: int
    node: str
    peer_node_id: int
    peer: str
    local_address: str
    peer_address: str
    protocol: str = "C"
    resync_rate_kib: int = 8192
    allow_two_primaries: bool = False
    initial_uuid: str | None = None  # both nodes' day-0 generation (fresh, identical volumes)
    backing_dev: str | None = None   # what status/events2 show as the backing device (default: volume)
    ping_int_s: float = 0.2
    ping_timeout_s: float = 1.0
    twopc_timeout_s: float = 0.5
    connect_int_s: float = 0.2


@dataclass
class DaemonConfig:
    node: str
    socket: str
    log: str | None = None
    resources: list[ResourceConfig] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DaemonConfig":
        res = [ResourceConfig(**r) for r in data.get("resources", [])]
        return cls(node=data["node"], socket=data["socket"], log=data.get("log"), resources=res)

    @classmethod
    def load(cls, path: str | Path) -> "DaemonConfig":
        return cls.from_json(json.loads(Path(path).read_text()))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def volume_paths(cfg: ResourceConfig) -> tuple[Path, Path, Path]:
    vol = Path(cfg.volume)
    return vol, vol.with_suffix(".md"), vol.with_suffix(".bm")


def create_volume(cfg: ResourceConfig) -> bool:
    """Create a resource's volume (sparse, zeroed) and metadata if missing. True if created."""
    vol, md, bm = volume_paths(cfg)
    created = False
    if not vol.exists():
        vol.parent.mkdir(parents=True, exist_ok=True)
        with open(vol, "wb") as fh:
            fh.truncate(cfg.size_kib * 1024)
        created = True
    if not md.exists():
        known = cfg.initial_uuid is not None
        Meta(current=cfg.initial_uuid or new_uuid(), consistent=known, was_uptodate=known).save(md)
        bm.unlink(missing_ok=True)
        created = True
    return created


# --------------------------------------------------------------------------------------------
# Logging like the kernel


class KernelLog:
    """DRBD 9 kernel-log lines (`drbd r0/0 drbd0 slave: disk( A -> B )`) in syslog format."""

    def __init__(self, path: str | None, host: str):
        self.fh = open(path, "a", buffering=1) if path else None
        self.host = host

    def __call__(self, prefix: str, message: str) -> None:
        stamp = time.strftime("%b %e %H:%M:%S")
        line = f"{stamp} {self.host} kernel: {prefix}: {message}"
        if self.fh:
            self.fh.write(line + "\n")
        else:
            print(line, file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Replication link


class Link:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.last_rx = time.monotonic()
        self.closed = False

    def send(self, kind: int, a: int = 0, b: int = 0, payload: bytes = b"") -> None:
        if not self.closed:
            self.writer.write(wire.link_frame(kind, a, b, payload))

    def send_json(self, kind: int, data: dict[str, Any], a: int = 0, b: int = 0) -> None:
        self.send(kind, a, b, json.dumps(data).encode())

    async def drain(self) -> None:
        if not self.closed:
            await self.writer.drain()

    async def recv(self) -> tuple[int, int, int, bytes]:
        frame = await wire.read_link_frame(self.reader)
        self.last_rx = time.monotonic()
        return frame

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.writer.close()
            except Exception:
                pass


@dataclass
class SyncProgress:
    total_blocks: int
    started: float = field(default_factory=time.monotonic)
    samples: collections.deque = field(default_factory=lambda: collections.deque(maxlen=64))

    def sample(self, remaining: int) -> None:
        self.samples.append((time.monotonic(), remaining))

    def rate_kib_s(self, window: float = 3.0) -> float:
        now = time.monotonic()
        recent = [s for s in self.samples if now - s[0] <= window]
        if len(recent) < 2 or recent[-1][0] == recent[0][0]:
            return 0.0
        blocks = recent[0][1] - recent[-1][1]
        return max(0.0, blocks * (BLOCK / 1024) / (recent[-1][0] - recent[0][0]))


# --------------------------------------------------------------------------------------------
# A resource


class Resource:
    def __init__(self, cfg: ResourceConfig, daemon: "Daemon"):
        self.cfg = cfg
        self.d = daemon
        self.up = False
        self.role = "Secondary"
        self.disk = "Diskless"
        self.conn = "StandAlone"
        self.repl = "Off"
        self.peer_role = "Unknown"
        self.peer_disk = "DUnknown"
        self.link: Link | None = None
        self.meta: Meta | None = None
        self.bm: Bitmap | None = None
        self.fd: int | None = None
        self.epoch = 0
        self.discard_my_data = False
        self.want_standalone = False
        self.promoting = False
        self.pending: dict[int, tuple[asyncio.Future, range]] = {}
        self.seq = 0
        self.upper_pending = 0
        self.sync: SyncProgress | None = None
        self.rs_inflight: set[int] = set()
        self.twopc: dict[int, asyncio.Future] = {}
        self.tasks: list[asyncio.Task] = []
        self.session_task: asyncio.Task | None = None
        self.server: asyncio.base_events.Server | None = None
        self.wake = asyncio.Event()
        self.io_gate = asyncio.Event()
        self.io_gate.set()
        self.stats = dict(read=0, written=0, al_writes=0, sent=0, received=0)
        self.nblocks = cfg.size_kib * 1024 // BLOCK
        self.split_brain_seen = False
        self.killed = False             # Daemon.kill(): a crash, nothing more reaches the disk

    # --- names -------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.cfg.name

    def klog(self, message: str, *, scope: str = "res") -> None:
        c = self.cfg
        prefix = {"res": f"drbd {c.name}", "peer": f"drbd {c.name} {c.peer}",
                  "dev": f"drbd {c.name}/0 drbd{c.minor}",
                  "pd": f"drbd {c.name}/0 drbd{c.minor} {c.peer}"}[scope]
        self.d.klog(prefix, message)

    # --- state changes (logged like the kernel, announced to events2 readers) ----------------

    def change(self, **new: str) -> None:
        tokens = {"role": "role", "disk": "disk", "conn": "conn", "peer_role": "peer", "peer_disk": "pdsk",
                  "repl": "repl"}
        groups: dict[str, list[str]] = {}
        scope_of = {"role": "res", "disk": "dev", "conn": "peer", "peer_role": "peer", "peer_disk": "pd", "repl": "pd"}
        for key, value in new.items():
            old = getattr(self, key)
            if old == value:
                continue
            setattr(self, key, value)
            groups.setdefault(scope_of[key], []).append(f"{tokens[key]}( {old} -> {value} )")
        for scope, parts in groups.items():
            self.klog(" ".join(parts), scope=scope)
        if groups:
            self.d.changed()

    def save_meta(self) -> None:
        assert self.meta is not None
        if self.killed:
            return
        self.meta.save(volume_paths(self.cfg)[1])

    # --- up / down ---------------------------------------------------------------------------

    async def bring_up(self) -> None:
        if self.up:
            raise failure(ERR_MINOR_EXISTS)
        create_volume(self.cfg)
        vol, md, bm = volume_paths(self.cfg)
        self.meta = Meta.load(md)
        self.bm = Bitmap(self.nblocks, bm)
        self.fd = os.open(vol, os.O_RDWR)
        self.up = True
        self.role, self.conn, self.repl, self.peer_role, self.peer_disk = "Secondary", "StandAlone", "Off", "Unknown", "DUnknown"
        self.disk = "Diskless"
        self.d.changed()
        if self.meta.crashed_primary and self.meta.al:
            for ext in self.meta.al:
                first = ext * EXTENT // BLOCK
                for blk in range(first, min(self.nblocks, first + EXTENT // BLOCK)):
                    self.bm.set(blk)
            self.klog(f"Found {len(self.meta.al)} transactions ({len(self.meta.al)} active extents) in activity log.",
                      scope="dev")
        disk = ("UpToDate" if self.meta.consistent and self.meta.was_uptodate
                else "Outdated" if self.meta.consistent else "Inconsistent")
        self.change(disk="Attaching")
        self.change(disk=disk)
        self.klog(f"attached to current UUID: {self.meta.current}", scope="dev")
        await self._listen()
        self.want_standalone = False
        self.change(conn="Connecting")
        self.session_task = asyncio.get_running_loop().create_task(self._manage())

    async def bring_down(self) -> None:
        if not self.up:
            return
        if self.role == "Primary":
            await self.demote()
        await self.disconnect()
        if self.session_task:
            self.session_task.cancel()
            await asyncio.gather(self.session_task, return_exceptions=True)
            self.session_task = None
        if self.server:
            self.server.close()
            self.server = None
        assert self.meta is not None and self.bm is not None
        self.meta.crashed_primary = False
        self.meta.al = []
        self.save_meta()
        self.bm.close()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.change(disk="Diskless")
        self.up = False
        self.d.changed()

    async def _listen(self) -> None:
        c = self.cfg
        try:
            self.server = await asyncio.start_server(self._incoming, c.local_address, c.port, reuse_address=True)
        except OSError as exc:
            self.klog(f"Failed to listen on {c.local_address}:{c.port}: {exc.strerror}", scope="peer")
            self.server = None

    # --- connecting --------------------------------------------------------------------------

    @property
    def dials(self) -> bool:
        return self.cfg.node_id < self.cfg.peer_node_id

    async def _incoming(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.dials or not self.up or self.conn != "Connecting" or self.link is not None:
            if self.up and not self.dials and self.link is not None and self.conn == "Connected":
                # The peer dials again: it lost the old link (e.g. it rebooted). Ours is dead.
                self._lost("NetworkFailure", "peer reconnected")
                if self.conn == "Connecting":
                    await self._session(reader, writer)
                    return
            writer.close()
            return
        await self._session(reader, writer)

    async def _manage(self) -> None:
        """Dial the peer whenever we are Connecting (the lower node-id dials, the other listens)."""
        c = self.cfg
        while self.up:
            if self.conn != "Connecting" or self.link is not None or not self.dials:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
                continue
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(c.peer_address, c.port, local_addr=(c.local_address, 0)),
                    timeout=max(0.5, c.ping_timeout_s))
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(c.connect_int_s)
                continue
            if self.conn != "Connecting" or self.link is not None:
                writer.close()
                continue
            await self._session(reader, writer)
            await asyncio.sleep(c.connect_int_s)

    def side(self) -> Side:
        assert self.meta is not None and self.bm is not None
        return Side(node_id=self.cfg.node_id, role=self.role, disk=self.disk, current=self.meta.current,
                    bitmap_base=self.meta.bitmap_base, history=list(self.meta.history),
                    crashed_primary=self.meta.crashed_primary, discard_my_data=self.discard_my_data,
                    oos=self.bm.count)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Handshake, then serve the link until it dies."""
        c = self.cfg
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = Link(reader, writer)
        self.io_gate.clear()            # no application write between the hellos and the verdict
        try:
            assert self.bm is not None
            me = self.side()
            link.send_json(wire.HELLO, {"resource": c.name, "node_id": c.node_id, "size_kib": c.size_kib,
                                        "protocol": c.protocol, "allow_two_primaries": c.allow_two_primaries,
                                        "side": me.to_json(), "bitmap": bytes(self.bm.bits).hex()})
            try:
                kind, _, _, payload = await asyncio.wait_for(link.recv(), timeout=max(1.0, 2 * c.ping_timeout_s))
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
                link.close()
                return
            hello = json.loads(payload) if kind == wire.HELLO else {}
            if hello.get("resource") != c.name or hello.get("node_id") != c.peer_node_id:
                self.klog("Peer presented a different resource or node-id; dropping connection", scope="peer")
                link.close()
                return
            if self.conn != "Connecting" or not self.up:
                link.close()
                return
            if hello.get("size_kib") != c.size_kib:
                self.klog(f"The peer's disk size is {hello.get('size_kib')} KiB, ours {c.size_kib} KiB", scope="dev")
            peer = Side.from_json(hello["side"])
            self.link = link
            self.change(conn="Connected", peer_role=peer.role)
            self.klog(f"Handshake to peer {c.peer_node_id} successful: Agreed network protocol version 121",
                      scope="peer")
            ok = self._apply_verdict(me, peer, bytes.fromhex(hello.get("bitmap", "")))
        finally:
            self.io_gate.set()
        if not ok:
            return
        pinger = asyncio.get_running_loop().create_task(self._pinger(link))
        try:
            await self._receive(link)
        finally:
            pinger.cancel()
            if self.link is link:
                self._lost("NetworkFailure" if not link.closed else "BrokenPipe", "connection closed")

    def _apply_verdict(self, me: Side, peer: Side, peer_bits: bytes) -> bool:
        assert self.meta is not None and self.bm is not None and self.link is not None
        verdict, rule = decide(me, peer)
        self.discard_my_data = False
        if verdict in (SOURCE, TARGET):
            self.klog(f"uuid_compare()={'source' if verdict == SOURCE else 'target'}-use-bitmap by rule={rule}",
                      scope="pd")
        if "discard-my-data" in rule:
            self.klog(f"Split-Brain detected, manually solved. Sync from {'this' if verdict == SOURCE else 'peer'} node",
                      scope="pd")
        if verdict == SPLIT_BRAIN:
            self.klog(f"uuid_compare()=split-brain-auto-recover by rule={rule}", scope="pd")
            self.d.helper(self, "initial-split-brain")
            self.klog("Split-Brain detected but unresolved, dropping connection!", scope="pd")
            self.d.helper(self, "split-brain")
            self.split_brain_seen = True
            self._drop_to_standalone()
            return False
        if verdict == UNRELATED:
            self.klog("uuid_compare()=-1000 by rule 100", scope="pd")
            self.klog("Unrelated data, aborting!", scope="pd")
            self._drop_to_standalone()
            return False
        if verdict == TARGET and self.role == "Primary":
            self.klog("I shall become SyncTarget, but I am primary!", scope="pd")
            self._drop_to_standalone()
            return False
        if self.meta.crashed_primary and self.role != "Primary":
            self.meta.crashed_primary = False
            self.meta.al = []
            self.save_meta()
        if verdict == NONE:
            self.change(repl="Established", peer_disk=peer.disk)
            if self.disk in ("Outdated", "Consistent") and peer.disk == "UpToDate" and me.current == peer.current:
                self._set_uptodate()
            return True
        if rule == "history":           # no usable bitmap: full sync
            self.bm.set_all()
        elif len(peer_bits) == len(self.bm.bits):
            self.bm.merge(peer_bits)
        if self.bm.count == 0:          # nothing to move: both sides still adopt the source's generation
            self.bm.set(0)
        if verdict == SOURCE:
            self._begin_source()
        else:
            self._begin_target()
        return True

    def _drop_to_standalone(self) -> None:
        link, self.link = self.link, None
        if link:
            link.close()
        self._fail_pending()
        self.change(conn="Disconnecting", repl="Off", peer_role="Unknown", peer_disk="DUnknown")
        self.change(conn="StandAlone")

    def _set_uptodate(self) -> None:
        assert self.meta is not None
        self.meta.consistent = self.meta.was_uptodate = True
        self.save_meta()
        self.change(disk="UpToDate")

    # --- the link's life ---------------------------------------------------------------------

    async def _pinger(self, link: Link) -> None:
        c = self.cfg
        while not link.closed:
            await asyncio.sleep(c.ping_int_s)
            if time.monotonic() - link.last_rx > c.ping_timeout_s:
                if self.link is link:
                    self.klog("PingAck did not arrive in time.", scope="peer")
                    self._lost("NetworkFailure", "ping timeout")
                return
            link.send(wire.PING)

    async def _receive(self, link: Link) -> None:
        while not link.closed:
            try:
                kind, a, b, payload = await link.recv()
            except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError):
                return
            if self.link is not link:
                return
            self._dispatch(link, kind, a, b, payload)

    def _dispatch(self, link: Link, kind: int, a: int, b: int, payload: bytes) -> None:
        assert self.bm is not None and self.meta is not None
        if kind == wire.WRITE:
            os.pwrite(self.fd, payload, b)
            self.stats["received"] += len(payload)
            self.stats["written"] += len(payload)
            link.send(wire.ACK, a)
        elif kind == wire.ACK:
            entry = self.pending.pop(a, None)
            if entry and not entry[0].done():
                entry[0].set_result(True)
        elif kind == wire.PING:
            link.send(wire.PONG)
        elif kind == wire.PONG:
            pass
        elif kind == wire.RS_DATA:
            os.pwrite(self.fd, payload, a * BLOCK)
            self.stats["received"] += len(payload)
            self.stats["written"] += len(payload)
            self.bm.clear(a)
            if self.sync:
                self.sync.sample(self.bm.count)
            link.send(wire.RS_ACK, a)
        elif kind == wire.RS_ACK:
            self.rs_inflight.discard(a)
            self.bm.clear(a)
            if self.sync:
                self.sync.sample(self.bm.count)
            self.wake.set()
        elif kind == wire.STATE:
            st = json.loads(payload)
            self.change(peer_role=st.get("role", self.peer_role), peer_disk=st.get("disk", self.peer_disk))
        elif kind == wire.TWOPC:
            req = json.loads(payload)
            refuse = False
            if req.get("want") == "primary" and not self.cfg.allow_two_primaries:
                refuse = self.role == "Primary" or (self.promoting and self.cfg.node_id < self.cfg.peer_node_id)
            link.send(wire.TWOPC_REPLY, a, 1 if refuse else 0)
        elif kind == wire.TWOPC_REPLY:
            fut = self.twopc.pop(a, None)
            if fut and not fut.done():
                fut.set_result("refused" if b else "ok")
        elif kind == wire.RS_BEGIN:
            req = json.loads(payload)
            bits = bytes.fromhex(req.get("bitmap", ""))
            if len(bits) == len(self.bm.bits):
                self.bm.merge(bits)
            if req.get("sender") == "target":
                self._begin_source()
            else:
                if self.role == "Primary":
                    self.klog("I shall become SyncTarget, but I am primary!", scope="pd")
                    self._drop_to_standalone()
                    return
                self._begin_target()
        elif kind == wire.RS_DONE:
            st = json.loads(payload)
            self._finish_target(st["current"])
        elif kind == wire.DISCONNECT:
            self.klog("peer requested disconnect", scope="peer")
            self._lost("TearDown", "peer disconnected")

    def _lost(self, how: str, why: str) -> None:
        """The link is gone (or we drop it): pending writes complete locally, out of sync."""
        link, self.link = self.link, None
        if link is None or self.killed:
            return
        link.close()
        assert self.meta is not None
        self.sync = None
        self.rs_inflight.clear()
        self._fail_pending()
        for fut in self.twopc.values():
            if not fut.done():
                fut.set_result("lost")
        self.twopc.clear()
        self.change(conn=how, repl="Off", peer_role="Unknown", peer_disk="DUnknown")
        if self.role == "Primary" and self.meta.start_new_generation():
            self.save_meta()
            self.klog(f"new current UUID {self.meta.current} (Primary lost its peer)", scope="dev")
        if self.want_standalone or not self.up:
            self.change(conn="StandAlone")
        else:
            self.change(conn="Unconnected")
            self.change(conn="Connecting")
            self.wake.set()

    def _fail_pending(self) -> None:
        pending, self.pending = self.pending, {}
        for fut, blocks in pending.values():
            self._mark_out_of_sync(blocks)
            if not fut.done():
                fut.set_result(False)

    # --- resync ------------------------------------------------------------------------------

    def _begin_source(self) -> None:
        assert self.bm is not None
        self.sync = SyncProgress(self.bm.count)
        self.sync.sample(self.bm.count)
        self.rs_inflight.clear()
        self.change(repl="WFBitMapS", peer_disk="Inconsistent")
        self.change(repl="SyncSource")
        self.klog(f"Began resync as SyncSource (will sync {self.bm.count * 4} KB [{self.bm.count} bits set]).",
                  scope="pd")
        self.tasks = [t for t in self.tasks if not t.done()]
        self.tasks.append(asyncio.get_running_loop().create_task(self._resync_source(self.link)))

    def _begin_target(self) -> None:
        assert self.bm is not None and self.meta is not None
        self.sync = SyncProgress(self.bm.count)
        self.sync.sample(self.bm.count)
        self.meta.consistent = False
        self.save_meta()
        if self.disk == "UpToDate":
            self.change(disk="Outdated")
        self.change(repl="WFBitMapT", peer_disk="UpToDate")
        self.change(disk="Inconsistent", repl="SyncTarget")
        self.klog(f"Began resync as SyncTarget (will sync {self.bm.count * 4} KB [{self.bm.count} bits set]).",
                  scope="pd")

    async def _resync_source(self, link: Link | None) -> None:
        assert self.bm is not None and self.fd is not None
        rate = max(1, self.cfg.resync_rate_kib) * 1024
        tick = 0.02
        window = 256
        cursor = 0
        credit = 0.0
        last = time.monotonic()
        while link is not None and self.link is link and self.repl == "SyncSource":
            now = time.monotonic()
            credit = min(credit + (now - last) * rate / BLOCK, max(8.0, rate * 0.25 / BLOCK))
            last = now
            if self.bm.count == 0 and not self.rs_inflight:
                self._finish_source(link)
                return
            sent = 0
            exhausted = True
            for blk in self.bm.iter_set(cursor):
                if credit < 1 or len(self.rs_inflight) >= window:
                    exhausted = False
                    break
                if blk in self.rs_inflight:
                    continue
                data = os.pread(self.fd, BLOCK, blk * BLOCK)
                link.send(wire.RS_DATA, blk, 0, data)
                self.stats["sent"] += len(data)
                self.stats["read"] += len(data)
                self.rs_inflight.add(blk)
                credit -= 1
                sent += 1
                cursor = blk + 1
            if exhausted:
                cursor = 0
            try:
                await link.drain()
            except (ConnectionError, OSError):
                return
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), tick)
            except asyncio.TimeoutError:
                pass

    def _finish_source(self, link: Link) -> None:
        assert self.meta is not None and self.bm is not None and self.sync is not None
        took = time.monotonic() - self.sync.started
        total_kb = self.sync.total_blocks * 4
        link.send_json(wire.RS_DONE, {"current": self.meta.current})
        self.meta.forget_bitmap_base()
        self.save_meta()
        self.bm.clear_all()
        self.sync = None
        self.klog(f"Resync done (total {max(1, round(took))} sec; paused 0 sec; "
                  f"{int(total_kb / max(took, 0.001))} K/sec)", scope="pd")
        self.change(repl="Established", peer_disk="UpToDate")
        self.d.changed()

    def _finish_target(self, current: str) -> None:
        assert self.meta is not None and self.bm is not None
        took = time.monotonic() - (self.sync.started if self.sync else time.monotonic())
        total_kb = (self.sync.total_blocks if self.sync else 0) * 4
        self.bm.clear_all()
        self.meta.adopt(current)
        self.save_meta()
        self.sync = None
        self.klog(f"Resync done (total {max(1, round(took))} sec; paused 0 sec; "
                  f"{int(total_kb / max(took, 0.001))} K/sec)", scope="pd")
        self.klog(f"updated UUIDs {self.meta.current}:0000000000000000:0000000000000000:0000000000000000",
                  scope="pd")
        self.change(disk="UpToDate", repl="Established")
        if self.link:
            self.link.send_json(wire.STATE, {"role": self.role, "disk": self.disk})

    # --- application I/O -----------------------------------------------------------------------

    def _mark_out_of_sync(self, blocks: range) -> None:
        assert self.meta is not None and self.bm is not None
        if self.meta.start_new_generation():
            self.klog(f"new current UUID {self.meta.current} (write while disconnected)", scope="dev")
            self.save_meta()
        for blk in blocks:
            if 0 <= blk < self.nblocks:
                self.bm.set(blk)

    def _activity_log(self, blocks: range) -> None:
        assert self.meta is not None
        extents = {blk * BLOCK // EXTENT for blk in blocks} - set(self.meta.al)
        if extents:
            self.meta.al = sorted(set(self.meta.al) | extents)
            self.stats["al_writes"] += 1
            self.save_meta()

    def check_io(self, length: int, offset: int) -> None:
        if not self.up or self.fd is None:
            raise DrbdError("no such resource", 10)
        if offset < 0 or length < 0 or offset + length > self.cfg.size_kib * 1024:
            raise DrbdError("I/O beyond the end of the device", 22)

    async def app_write(self, offset: int, data: bytes, epoch: int | None = None) -> None:
        self.check_io(len(data), offset)
        await self.io_gate.wait()
        if self.role != "Primary":
            raise DrbdError("not Primary (the device is read-only on a Secondary)", 30)
        if epoch is not None and epoch != self.epoch:
            raise DrbdError(f"stale epoch {epoch} (now {self.epoch})", 116)
        if self.disk != "UpToDate":
            raise DrbdError(f"local disk is {self.disk}", 5)
        assert self.bm is not None
        blocks = self.bm.blocks_of(offset, len(data))
        self._activity_log(blocks)
        self.upper_pending += 1
        try:
            os.pwrite(self.fd, data, offset)
            self.stats["written"] += len(data)
            link = self.link
            if link is not None and self.conn == "Connected" and self.repl in REPLICATING:
                self.seq += 1
                seq = self.seq
                fut = asyncio.get_running_loop().create_future()
                self.pending[seq] = (fut, blocks)
                link.send(wire.WRITE, seq, offset, data)
                self.stats["sent"] += len(data)
                if self.cfg.protocol != "A":
                    await fut
            else:
                self._mark_out_of_sync(blocks)
        finally:
            self.upper_pending -= 1

    def app_read(self, offset: int, length: int) -> bytes:
        self.check_io(length, offset)
        if self.disk != "UpToDate":
            raise DrbdError(f"local disk is {self.disk}", 5)
        self.stats["read"] += length
        return os.pread(self.fd, length, offset)

    # --- administration (drbdsetup's actions) ------------------------------------------------

    async def promote(self, force: bool = False) -> None:
        if not self.up:
            raise failure(ERR_RES_NOT_KNOWN)
        if self.role == "Primary":
            return
        if self.disk != "UpToDate" and not force:
            raise state_change_failed(SS_NO_UP_TO_DATE_DISK)
        if self.disk == "Diskless":
            raise state_change_failed(SS_NO_UP_TO_DATE_DISK)
        if self.link is not None and self.conn == "Connected":
            self.promoting = True
            try:
                verdict = await self._ask_peer({"want": "primary"})
            finally:
                self.promoting = False
            if verdict == "refused":
                raise state_change_failed(SS_TWO_PRIMARIES)
        assert self.meta is not None and self.bm is not None
        if self.role == "Primary":
            return
        if self.disk != "UpToDate":       # --force
            self.meta.consistent = self.meta.was_uptodate = True
            self.meta.forget_bitmap_base()
            self.meta.start_new_generation()
            self.save_meta()
            self.change(disk="UpToDate")
            if self.link is not None and self.peer_disk in ("Inconsistent", "Outdated", "Consistent"):
                self.bm.set_all()
                self.link.send_json(wire.RS_BEGIN, {"sender": "source", "bitmap": bytes(self.bm.bits).hex()})
                self._begin_source()
        if self.conn != "Connected" and self.meta.start_new_generation():
            self.klog(f"new current UUID {self.meta.current} (promoted while disconnected)", scope="dev")
        self.meta.crashed_primary = True
        self.save_meta()
        # A promotion epoch unique across restarts of the daemon (the write service compares them).
        self.epoch = max(self.epoch + 1, time.time_ns() // 1_000_000)
        self.change(role="Primary")
        if self.link is not None:
            self.link.send_json(wire.STATE, {"role": self.role, "disk": self.disk})

    async def _ask_peer(self, request: dict[str, Any]) -> str:
        """DRBD 9's cluster-wide state change: the peer agrees, refuses, or is disconnected on timeout."""
        link = self.link
        assert link is not None
        self.seq += 1
        rid = self.seq
        fut = asyncio.get_running_loop().create_future()
        self.twopc[rid] = fut
        link.send_json(wire.TWOPC, request, a=rid)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.cfg.twopc_timeout_s)
        except asyncio.TimeoutError:
            self.twopc.pop(rid, None)
            if self.link is link:
                self.klog("Timeout waiting for the peer's reply to a state change; dropping connection",
                          scope="peer")
                self._lost("Timeout", "state change timeout")
            return "lost"

    async def demote(self) -> None:
        if not self.up:
            raise failure(ERR_RES_NOT_KNOWN)
        if self.role != "Primary":
            return
        waiting = [fut for fut, _ in self.pending.values()]
        if waiting:
            await asyncio.wait(waiting, timeout=self.cfg.ping_timeout_s * 2)
        assert self.meta is not None
        self.meta.crashed_primary = False
        self.meta.al = []
        self.save_meta()
        self.change(role="Secondary")
        if self.link is not None:
            self.link.send_json(wire.STATE, {"role": self.role, "disk": self.disk})

    async def connect(self, discard_my_data: bool = False) -> None:
        if not self.up:
            raise failure(ERR_RES_NOT_KNOWN)
        if self.conn != "StandAlone":
            raise failure(ERR_NET_CONFIGURED)
        self.discard_my_data = discard_my_data
        self.want_standalone = False
        self.change(conn="Connecting")
        self.wake.set()

    async def disconnect(self) -> None:
        if not self.up:
            raise failure(ERR_RES_NOT_KNOWN)
        if self.conn == "StandAlone":
            return
        self.want_standalone = True
        link = self.link
        if link is not None:
            link.send(wire.DISCONNECT)
            try:
                await asyncio.wait_for(link.drain(), 0.5)
            except (asyncio.TimeoutError, ConnectionError, OSError):
                pass
            self.change(conn="Disconnecting")
            self._lost("Disconnecting", "disconnect")
        self.change(conn="StandAlone")

    async def invalidate(self) -> None:
        if not self.up:
            raise failure(ERR_MINOR_INVALID)
        assert self.meta is not None and self.bm is not None
        if self.repl in ("SyncSource", "SyncTarget"):
            raise state_change_failed(SS_RESYNC_RUNNING)
        if self.role == "Primary":
            raise state_change_failed(SS_NO_UP_TO_DATE_DISK)
        if self.link is not None and self.peer_disk != "UpToDate":
            raise state_change_failed(SS_NO_UP_TO_DATE_DISK)
        self.bm.set_all()
        self.meta.consistent = False
        self.save_meta()
        if self.link is not None:
            self.link.send_json(wire.RS_BEGIN, {"sender": "target", "bitmap": bytes(self.bm.bits).hex()})
            self._begin_target()
        else:
            self.change(disk="Inconsistent")

    # --- views -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        c = self.cfg
        oos_kib = (self.bm.count if self.bm else 0) * (BLOCK // 1024)
        sync = None
        if self.sync and self.repl in ("SyncSource", "SyncTarget"):
            rate = self.sync.rate_kib_s()
            remaining = oos_kib
            total = self.sync.total_blocks * (BLOCK // 1024)
            elapsed = time.monotonic() - self.sync.started
            sync = {"rs_total": total, "dbdt1": rate / 1024, "eta": (remaining / rate) if rate > 0 else None,
                    "dt_start_ms": elapsed * 1000, "dt0_ms": elapsed * 1000, "dt1_ms": 3000,
                    "db0_sectors": (total - remaining) * 2, "db1_sectors": rate * 3 * 2,
                    "dbdt0": (total - remaining) / 1024 / max(elapsed, 0.001), "dbdt": (total - remaining) / 1024 / max(elapsed, 0.001),
                    "want": c.resync_rate_kib / 1024}
        score = {"UpToDate": 10100, "Consistent": 10050, "Outdated": 10010, "Inconsistent": 10000}.get(self.disk, 0)
        score += 2 if self.conn == "Connected" else 1 if score else 0
        connected = self.conn == "Connected"
        may = (self.role == "Secondary" and self.disk == "UpToDate"
               and not (connected and self.peer_role == "Primary" and not c.allow_two_primaries))
        return {
            "name": c.name, "node_id": c.node_id, "role": self.role, "suspended": "no", "force_io_failures": False,
            "write_ordering": "flush", "may_promote": may, "promotion_score": score,
            "devices": [{
                "volume": 0, "minor": c.minor, "disk": self.disk, "backing_dev": c.backing_dev or c.volume,
                "client": False, "open": self.role == "Primary",
                "quorum": True, "size": c.size_kib, "read": self.stats["read"] // 1024,
                "written": self.stats["written"] // 1024, "al_writes": self.stats["al_writes"],
                "bm_writes": self.bm.writes if self.bm else 0, "upper_pending": self.upper_pending,
                "lower_pending": 0, "al_suspended": False, "blocked": "no"}],
            "connections": [{
                "peer_node_id": c.peer_node_id, "name": c.peer, "connection": self.conn, "role": self.peer_role,
                "congested": False, "ap_in_flight": len(self.pending) * 4, "rs_in_flight": len(self.rs_inflight) * 4,
                "tls": False,
                "paths": [{"local": ["ipv4", c.local_address, c.port], "peer": ["ipv4", c.peer_address, c.port],
                           "established": connected}],
                "peer_devices": [{
                    "volume": 0, "replication": self.repl, "peer_disk": self.peer_disk, "peer_client": False,
                    "resync_suspended": "no", "received": self.stats["received"] // 1024,
                    "sent": self.stats["sent"] // 1024, "out_of_sync": oos_kib, "pending": 0,
                    "unacked": len(self.pending), "sync": sync}]}],
        }

    def internals(self) -> dict[str, Any]:
        m = self.meta
        return {"up": self.up, "epoch": self.epoch, "role": self.role, "disk": self.disk, "conn": self.conn,
                "repl": self.repl, "peer_role": self.peer_role, "peer_disk": self.peer_disk,
                "current": m.current if m else None, "bitmap_base": m.bitmap_base if m else None,
                "crashed_primary": m.crashed_primary if m else None, "oos_blocks": self.bm.count if self.bm else 0,
                "pending": len(self.pending), "split_brain_seen": self.split_brain_seen,
                "size": self.cfg.size_kib * 1024, "discard_my_data": self.discard_my_data}


# --------------------------------------------------------------------------------------------
# The daemon: resources, the control socket, events2 readers


class Subscriber:
    def __init__(self, names: set[str] | None, statistics: bool, timestamps: bool):
        self.names = names
        self.statistics = statistics
        self.timestamps = timestamps
        self.queue: asyncio.Queue[list[str]] = asyncio.Queue()
        self.last: list[dict[str, Any]] = []


# The control socket's `cli` op: runs drbdadm/drbdsetup (hatui.lab.drbd.commands.run) and answers.
CliHandler = Callable[["Daemon", dict[str, Any], asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Daemon:
    def __init__(self, config: DaemonConfig, cli: CliHandler | None = None):
        self.config = config
        self.cli = cli
        self.klog = KernelLog(config.log, config.node)
        self.resources = {r.name: Resource(r, self) for r in config.resources}
        self.subscribers: set[Subscriber] = set()
        self._flush_scheduled = False
        self.server: asyncio.base_events.Server | None = None
        self.stopped = asyncio.Event()
        self._progress_task: asyncio.Task | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        path = Path(self.config.socket)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self.server = await asyncio.start_unix_server(self._client, str(path))
        os.chmod(path, 0o600)
        for res in self.resources.values():
            await res.bring_up()
        self._progress_task = asyncio.get_running_loop().create_task(self._progress())

    async def stop(self) -> None:
        if self._progress_task:
            self._progress_task.cancel()
        for res in self.resources.values():
            try:
                await res.bring_down()
            except DrbdError:
                pass
        if self.server:
            self.server.close()
        Path(self.config.socket).unlink(missing_ok=True)
        self.stopped.set()

    async def kill(self) -> None:
        """Die like a crashed host (tests): no clean demotion, links just vanish."""
        for res in self.resources.values():
            res.killed = True
            if res.bm:
                res.bm.close()
            if res.session_task:
                res.session_task.cancel()
            for t in res.tasks:
                t.cancel()
            if res.link:
                res.link.writer.transport.abort()
                res.link.closed = True
            if res.server:
                res.server.close()
            if res.bm:
                res.bm.close()
            if res.fd is not None:
                os.close(res.fd)
                res.fd = None
            res.up = False
        if self._progress_task:
            self._progress_task.cancel()
        if self.server:
            self.server.close()
        Path(self.config.socket).unlink(missing_ok=True)
        self.stopped.set()

    async def _progress(self) -> None:
        """During a resync, tell events2 readers about `done:` twice a second (as the kernel does)."""
        while True:
            await asyncio.sleep(0.5)
            if any(r.sync for r in self.resources.values()):
                self.changed()

    # --- events ------------------------------------------------------------------------------

    def snapshots(self, names: set[str] | None = None) -> list[dict[str, Any]]:
        return [r.snapshot() for r in self.resources.values() if r.up and (names is None or r.name in names)]

    def changed(self) -> None:
        if self.subscribers and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        for sub in list(self.subscribers):
            snaps = self.snapshots(sub.names)
            lines = formats.events2_changes(sub.last, snaps, statistics=sub.statistics)
            sub.last = snaps
            if lines:
                sub.queue.put_nowait(lines)

    def helper(self, res: Resource, helper: str) -> None:
        self._flush()
        for sub in list(self.subscribers):
            if sub.names is None or res.name in sub.names:
                sub.queue.put_nowait(formats.helper_lines(res.snapshot(), helper, status=0))

    # --- control socket ----------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            req = await wire.read_frame(reader)
            if req is None:
                return
            header, payload = req
            op = header.get("op")
            if op == "cli" and self.cli is not None:
                await self.cli(self, header, reader, writer)
            elif op == "state":
                writer.write(wire.frame({"resources": self.snapshots(),
                                         "internals": {n: r.internals() for n, r in self.resources.items()}}))
            elif op in ("write", "read", "info"):
                await self._io(op, header, payload, writer)
            else:
                writer.write(wire.frame({"ok": False, "error": f"unknown op {op!r}"}))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _io(self, op: str, header: dict[str, Any], payload: bytes, writer: asyncio.StreamWriter) -> None:
        res = self.resources.get(header.get("res", ""))
        if res is None:
            writer.write(wire.frame({"ok": False, "error": "no such resource", "code": 10}))
            return
        try:
            if op == "info":
                writer.write(wire.frame({"ok": True, **res.internals()}))
            elif op == "write":
                await res.app_write(int(header["offset"]), payload, header.get("epoch"))
                writer.write(wire.frame({"ok": True, "epoch": res.epoch}))
            else:
                data = res.app_read(int(header["offset"]), int(header["length"]))
                writer.write(wire.frame({"ok": True, "epoch": res.epoch}, data))
        except DrbdError as exc:
            writer.write(wire.frame({"ok": False, "error": exc.text, "code": exc.rc, "epoch": res.epoch,
                                     "role": res.role}))
