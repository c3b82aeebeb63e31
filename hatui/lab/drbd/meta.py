"""On-disk metadata of the DRBD stand-in: data generation UUIDs, flags, activity log, bitmap,
and the sync-handshake decision (pure, so both sides of a connection reach the same verdict).

Like DRBD (user's guide, "DRBD generation identifiers"):

* the *current UUID* names the data generation a node holds; both nodes hold the same one while
  they are connected and in sync;
* a new data generation starts when a disconnected node is promoted, when a Primary loses its
  peer, or when a Primary writes while disconnected; the old current UUID becomes the *bitmap
  UUID* (the base the out-of-sync bitmap is relative to);
* the *bitmap* marks every 4 KiB block written while the peer could not get it;
* the *activity log* lists the 4 MiB extents a Primary is writing to; after a crash of a
  Primary those extents are marked out of sync (they may hold writes the peer never got);
* on connect the two nodes compare UUIDs: the node whose bitmap UUID is the peer's current UUID
  is the sync source; both bitmap UUIDs equal but different current UUIDs is a split brain.

Files, next to the volume: `<res>.md` (JSON, replaced atomically) and `<res>.bm` (one bit per
4 KiB block; a changed byte is written in place).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

BLOCK = 4096                     # bytes per bitmap bit (DRBD: 4 KiB)
EXTENT = 4 * 1024 * 1024         # activity-log extent (DRBD: 4 MiB)
HISTORY = 4


def new_uuid(avoid: set[str] | None = None) -> str:
    while True:
        u = secrets.token_hex(8).upper()
        if not avoid or u not in avoid:
            return u


@dataclass
class Meta:
    current: str
    bitmap_base: str | None = None
    history: list[str] = field(default_factory=list)
    consistent: bool = True          # the data is a complete generation (not a half-done sync target)
    was_uptodate: bool = True        # it was UpToDate when last known
    crashed_primary: bool = False    # set while Primary, cleared on a clean demotion
    al: list[int] = field(default_factory=list)  # activity-log extents (while Primary)

    # --- persistence ---------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> "Meta":
        data = json.loads(path.read_text())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        os.replace(tmp, path)

    # --- generations -----------------------------------------------------------------------

    def start_new_generation(self) -> bool:
        """A new current UUID, the old one becoming the bitmap UUID (once per disconnected period)."""
        if self.bitmap_base is not None:
            return False
        self.bitmap_base = self.current
        self.current = new_uuid({self.current, *self.history})
        return True

    def forget_bitmap_base(self) -> None:
        if self.bitmap_base is not None:
            self.history = ([self.bitmap_base] + [h for h in self.history if h != self.bitmap_base])[:HISTORY]
            self.bitmap_base = None

    def adopt(self, current: str) -> None:
        """After a completed sync as target: take the source's generation."""
        if current != self.current:
            self.history = ([self.current] + [h for h in self.history if h not in (self.current, current)])[:HISTORY]
        self.current = current
        self.bitmap_base = None
        self.consistent = True
        self.was_uptodate = True


class Bitmap:
    """One bit per 4 KiB block, mirrored to a file (a changed byte is written in place)."""

    def __init__(self, nblocks: int, path: Path | None = None):
        self.nblocks = nblocks
        self.path = path
        self.bits = bytearray((nblocks + 7) // 8)
        self.count = 0
        self.writes = 0              # bm-writes statistic
        self._fd: int | None = None
        if path is not None:
            if path.exists() and path.stat().st_size == len(self.bits):
                self.bits = bytearray(path.read_bytes())
                self.count = sum(bin(b).count("1") for b in self.bits)
            else:
                path.write_bytes(bytes(self.bits))
            self._fd = os.open(path, os.O_RDWR)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _flush_byte(self, i: int) -> None:
        if self._fd is not None:
            os.pwrite(self._fd, bytes((self.bits[i],)), i)
            self.writes += 1

    def test(self, block: int) -> bool:
        return bool(self.bits[block >> 3] & (1 << (block & 7)))

    def set(self, block: int) -> bool:
        i, m = block >> 3, 1 << (block & 7)
        if self.bits[i] & m:
            return False
        self.bits[i] |= m
        self.count += 1
        self._flush_byte(i)
        return True

    def clear(self, block: int) -> bool:
        i, m = block >> 3, 1 << (block & 7)
        if not self.bits[i] & m:
            return False
        self.bits[i] &= ~m
        self.count -= 1
        self._flush_byte(i)
        return True

    def set_all(self) -> None:
        self.bits = bytearray(b"\xff" * len(self.bits))
        extra = len(self.bits) * 8 - self.nblocks
        if extra:
            self.bits[-1] = 0xFF >> extra
        self.count = self.nblocks
        self._rewrite()

    def clear_all(self) -> None:
        self.bits = bytearray(len(self.bits))
        self.count = 0
        self._rewrite()

    def merge(self, other: bytes) -> None:
        if len(other) != len(self.bits):
            raise ValueError("bitmap size mismatch")
        self.bits = bytearray(a | b for a, b in zip(self.bits, other))
        self.count = sum(bin(b).count("1") for b in self.bits)
        self._rewrite()

    def _rewrite(self) -> None:
        if self._fd is not None:
            os.pwrite(self._fd, bytes(self.bits), 0)
            self.writes += 1

    def iter_set(self, start: int = 0) -> Iterator[int]:
        """Set bits from `start` on (skipping zero bytes quickly)."""
        i = start >> 3
        bits = self.bits
        n = len(bits)
        first = True
        while i < n:
            b = bits[i]
            if b:
                for j in range(8):
                    blk = (i << 3) + j
                    if b & (1 << j) and blk < self.nblocks and (not first or blk >= start):
                        yield blk
            first = False
            i += 1

    def blocks_of(self, offset: int, length: int) -> range:
        return range(offset // BLOCK, (offset + max(length, 1) - 1) // BLOCK + 1)


# --------------------------------------------------------------------------------------------
# The handshake decision


@dataclass
class Side:
    """What a node tells its peer in the handshake (and the decision works on)."""

    node_id: int
    role: str
    disk: str
    current: str
    bitmap_base: str | None
    history: list[str]
    crashed_primary: bool
    discard_my_data: bool
    oos: int = 0                     # out-of-sync blocks in its bitmap

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Side":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


# decide() results, from the point of view of `me`
NONE, SOURCE, TARGET, SPLIT_BRAIN, UNRELATED = "none", "source", "target", "split-brain", "unrelated"
_DISK_RANK = {"UpToDate": 3, "Consistent": 2, "Outdated": 2, "Inconsistent": 1}


def decide(me: Side, peer: Side) -> tuple[str, str]:
    """(verdict, rule) for `me`; decide(peer, me) is always the mirror image."""
    mine, theirs = _DISK_RANK.get(me.disk, 0), _DISK_RANK.get(peer.disk, 0)
    if min(mine, theirs) == 1 and mine != theirs:
        return (SOURCE if mine > theirs else TARGET), "disk-states"
    if mine == 1 and theirs == 1:
        return NONE, "both-inconsistent"
    if me.current == peer.current:
        if me.crashed_primary != peer.crashed_primary:
            crashed_is_me = me.crashed_primary
            # The crashed Primary pushes its hot extents, unless the other node is Primary now.
            other_primary = peer.role == "Primary" if crashed_is_me else me.role == "Primary"
            source_is_me = crashed_is_me != other_primary
            return (SOURCE if source_is_me else TARGET), "crashed-primary"
        if me.oos or peer.oos:
            if me.crashed_primary and peer.crashed_primary:
                return (SOURCE if me.node_id < peer.node_id else TARGET), "both-crashed"
            return (SOURCE if me.oos >= peer.oos and (me.oos != peer.oos or me.node_id < peer.node_id)
                    else TARGET), "bitmaps"
        return NONE, "same-generation"
    i_lead = me.bitmap_base is not None and me.bitmap_base == peer.current
    they_lead = peer.bitmap_base is not None and peer.bitmap_base == me.current
    if i_lead != they_lead:
        return (SOURCE if i_lead else TARGET), "bitmap-uuid"
    if i_lead or (me.bitmap_base is not None and me.bitmap_base == peer.bitmap_base):
        return _split_brain(me, peer, "bitmap-both")
    mine_all = {me.current, me.bitmap_base, *me.history} - {None}
    theirs_all = {peer.current, peer.bitmap_base, *peer.history} - {None}
    i_descend, they_descend = peer.current in mine_all, me.current in theirs_all
    if i_descend != they_descend:      # one descends from the other's generation: full sync
        return (SOURCE if i_descend else TARGET), "history"
    if i_descend or mine_all & theirs_all:
        return _split_brain(me, peer, "history-both")
    return UNRELATED, "unrelated-data"


def _split_brain(me: Side, peer: Side, rule: str) -> tuple[str, str]:
    if me.discard_my_data != peer.discard_my_data:
        return (TARGET if me.discard_my_data else SOURCE), rule + "+discard-my-data"
    return SPLIT_BRAIN, rule
