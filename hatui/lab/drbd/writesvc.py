"""The lab's write path: a small HTTP service that stores records on the replicated volume.

    python -m hatui.lab.drbd.writesvc --socket /run/hatui-drbd/control.sock --resource r0 \\
        --listen 127.0.0.1:8079 --node master [--daemon --pidfile F]

One runs on every lab host (on 127.0.0.1 inside the host); the host's nginx proxies
`POST /write` and `GET /read/ID` to it, so clients reach it through the VIP:

    POST /write          body = the record (at most 488 bytes) -> 200 {"id": N, "node": "..."}
                         once the write is acknowledged: on the local volume and, with protocol C,
                         on the peer's. 503 when the local DRBD role is not Primary.
    GET  /read/N         200 with the record's bytes, 404 if there is no record N, 503 when the
                         local disk is not readable (not UpToDate)
    GET  /writes/info    200 {"node", "role", "disk", "epoch", "next_id"}

Layout on the volume: record N lives in the 512-byte slot at offset N*512 (N >= 1): the header
`<8sQII` (magic "HATUIREC", id, length, CRC-32 of the payload) and the payload. A node that
becomes Primary scans the volume for the highest record before it writes, so ids keep growing
across failovers (the DRBD daemon's promotion *epoch* tells the service when to rescan).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import re
import signal
import struct
import sys
import zlib
from typing import Any

from hatui.lab.drbd import process, wire

RECORD = 512
MAGIC = b"HATUIREC"
HDR = struct.Struct("<8sQII")
MAX_PAYLOAD = RECORD - HDR.size
SCAN_CHUNK = 1 << 20
STALE_EPOCH = 116
NOT_PRIMARY = 30


class Unavailable(Exception):
    """The write cannot be served here (not Primary, disk not readable, daemon away): HTTP 503."""


def encode(rid: int, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"record too large ({len(payload)} > {MAX_PAYLOAD} bytes)")
    head = HDR.pack(MAGIC, rid, len(payload), zlib.crc32(payload))
    return (head + payload).ljust(RECORD, b"\0")


def decode(slot: bytes, rid: int | None = None) -> tuple[int, bytes] | None:
    """(id, payload) of a valid record slot, else None."""
    if len(slot) < HDR.size:
        return None
    magic, sid, length, crc = HDR.unpack_from(slot)
    if magic != MAGIC or length > MAX_PAYLOAD or (rid is not None and sid != rid):
        return None
    payload = bytes(slot[HDR.size:HDR.size + length])
    if zlib.crc32(payload) != crc:
        return None
    return sid, payload


class RecordStore:
    """Records on a DRBD stand-in resource, through the daemon's control socket."""

    def __init__(self, socket_path: str, resource: str):
        self.socket = socket_path
        self.resource = resource
        self.epoch: int | None = None      # the promotion epoch next_id was computed for
        self.next_id = 1
        self.size = 0
        self._lock = asyncio.Lock()

    async def _call(self, header: dict[str, Any], payload: bytes = b"") -> tuple[dict[str, Any], bytes]:
        try:
            return await wire.request(self.socket, {"res": self.resource, **header}, payload)
        except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
            raise Unavailable(f"DRBD stand-in not answering: {exc}") from None

    async def info(self) -> dict[str, Any]:
        reply, _ = await self._call({"op": "info"})
        if not reply.get("ok"):
            raise Unavailable(reply.get("error", "no such resource"))
        return reply

    async def _rescan(self) -> None:
        info = await self.info()
        if info["role"] != "Primary":
            raise Unavailable(f"DRBD role is {info['role']}, not Primary")
        self.size = info["size"]
        highest = 0
        offset = 0
        while offset < self.size:
            length = min(SCAN_CHUNK, self.size - offset)
            reply, data = await self._call({"op": "read", "offset": offset, "length": length})
            if not reply.get("ok"):
                raise Unavailable(reply.get("error", "read failed"))
            found = False
            for pos in range(0, len(data), RECORD):
                rec = decode(data[pos:pos + RECORD])
                if rec is not None and rec[0] == (offset + pos) // RECORD:
                    highest = max(highest, rec[0])
                    found = True
            if not found and offset > 0:
                break
            offset += length
        self.next_id = highest + 1
        self.epoch = info["epoch"]

    async def write(self, payload: bytes) -> int:
        record_payload = payload
        for _ in range(3):
            async with self._lock:
                if self.epoch is None:
                    await self._rescan()
                rid = self.next_id
                if (rid + 1) * RECORD > self.size:
                    raise OverflowError("the volume is full")
                self.next_id += 1
                epoch = self.epoch
            reply, _ = await self._call({"op": "write", "offset": rid * RECORD, "epoch": epoch},
                                        encode(rid, record_payload))
            if reply.get("ok"):
                return rid
            if reply.get("code") == STALE_EPOCH:
                async with self._lock:
                    if self.epoch == epoch:
                        self.epoch = None   # promoted again since: rescan before the next id
                continue
            if reply.get("code") == NOT_PRIMARY:
                async with self._lock:
                    self.epoch = None
            raise Unavailable(reply.get("error", "write failed"))
        raise Unavailable("the role changed while writing")

    async def read(self, rid: int) -> bytes | None:
        reply, _ = await self._call({"op": "info"})
        if not reply.get("ok"):
            raise Unavailable(reply.get("error", "no such resource"))
        if rid < 1 or (rid + 1) * RECORD > reply["size"]:
            return None
        reply, data = await self._call({"op": "read", "offset": rid * RECORD, "length": RECORD})
        if not reply.get("ok"):
            raise Unavailable(reply.get("error", "read failed"))
        rec = decode(data, rid)
        return rec[1] if rec else None


# --------------------------------------------------------------------------------------------
# HTTP


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
           413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable",
           507: "Insufficient Storage"}
_READ = re.compile(r"^/read/(\d{1,18})$")


class WriteService:
    def __init__(self, store: RecordStore, node: str):
        self.store = store
        self.node = node
        self.server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._handle, host, port, reuse_address=True)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body, ctype = await asyncio.wait_for(self._serve(reader), 30)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            status, body, ctype = 400, b"bad request\n", "text/plain"
        try:
            head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\nX-Served-By: {self.node}\r\n\r\n")
            writer.write(head.encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader) -> tuple[int, bytes, str]:
        line = (await reader.readline()).decode("latin-1").strip()
        parts = line.split()
        if len(parts) < 2:
            return 400, b"bad request\n", "text/plain"
        method, target = parts[0], parts[1].split("?", 1)[0]
        length = None
        while True:
            h = (await reader.readline()).decode("latin-1")
            if h in ("\r\n", "\n", ""):
                break
            name, _, value = h.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        try:
            if target == "/write":
                if method != "POST":
                    return 405, b"POST only\n", "text/plain"
                if length is None:
                    return 411, b"Content-Length required\n", "text/plain"
                if length > MAX_PAYLOAD:
                    return 413, f"a record holds at most {MAX_PAYLOAD} bytes\n".encode(), "text/plain"
                payload = await reader.readexactly(length)
                rid = await self.store.write(payload)
                return 200, json.dumps({"id": rid, "node": self.node}).encode() + b"\n", "application/json"
            m = _READ.match(target)
            if m and method in ("GET", "HEAD"):
                data = await self.store.read(int(m.group(1)))
                if data is None:
                    return 404, b"no such record\n", "text/plain"
                return 200, data, "application/octet-stream"
            if target == "/writes/info":
                info = await self.store.info()
                body = {"node": self.node, "role": info["role"], "disk": info["disk"], "epoch": info["epoch"],
                        "next_id": self.store.next_id if self.store.epoch == info["epoch"] else None}
                return 200, json.dumps(body).encode() + b"\n", "application/json"
            return 404, b"not found\n", "text/plain"
        except Unavailable as exc:
            return 503, f"{exc}\n".encode(), "text/plain"
        except OverflowError as exc:
            return 507, f"{exc}\n".encode(), "text/plain"


async def serve(socket_path: str, resource: str, host: str, port: int, node: str, ready=None) -> None:
    svc = WriteService(RecordStore(socket_path, resource), node)
    try:
        await svc.start(host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE and ready:   # started twice in one boot: the first one serves
            ready(None)
            return
        process.tell_started(ready, exc)
        raise
    except Exception as exc:
        process.tell_started(ready, exc)
        raise
    process.tell_started(ready)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hatui-drbd-writesvc", description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--resource", required=True)
    ap.add_argument("--listen", default="127.0.0.1:8079")
    ap.add_argument("--node", required=True)
    process.add_options(ap)
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    ready = process.start(args)
    asyncio.run(serve(args.socket, args.resource, host or "127.0.0.1", int(port), args.node, ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())
