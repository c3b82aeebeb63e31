"""Framing shared by the stand-in's daemon, its command-line client and the write service.

Control socket (unix): a frame is a 4-byte big-endian length, that many bytes of JSON (the
header), then `header["len"]` bytes of payload when the header has "len".

Replication link (TCP between the two daemons): a frame is the struct `!BIQQ` (type, payload
length, a, b) followed by the payload. `a`/`b` carry sequence numbers, offsets and block numbers.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

CTRL_HDR = struct.Struct("!I")
MAX_HEADER = 1 << 20

LINK_HDR = struct.Struct("!BIQQ")
MAX_PAYLOAD = 64 << 20

# replication link message types
HELLO, WRITE, ACK, PING, PONG, RS_DATA, RS_ACK, STATE, TWOPC, TWOPC_REPLY, DISCONNECT, RS_BEGIN, RS_DONE = range(1, 14)


async def read_frame(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes] | None:
    """One control frame, or None at EOF."""
    try:
        raw = await reader.readexactly(CTRL_HDR.size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    (n,) = CTRL_HDR.unpack(raw)
    if n > MAX_HEADER:
        raise ValueError("control frame header too large")
    header = json.loads(await reader.readexactly(n))
    payload = b""
    if header.get("len"):
        payload = await reader.readexactly(int(header["len"]))
    return header, payload


def frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    if payload:
        header = {**header, "len": len(payload)}
    body = json.dumps(header).encode()
    return CTRL_HDR.pack(len(body)) + body + payload


def link_frame(kind: int, a: int = 0, b: int = 0, payload: bytes = b"") -> bytes:
    return LINK_HDR.pack(kind, len(payload), a, b) + payload


async def read_link_frame(reader: asyncio.StreamReader) -> tuple[int, int, int, bytes]:
    kind, n, a, b = LINK_HDR.unpack(await reader.readexactly(LINK_HDR.size))
    if n > MAX_PAYLOAD:
        raise ValueError("replication frame too large")
    payload = await reader.readexactly(n) if n else b""
    return kind, a, b, payload


async def request(socket_path: str, header: dict[str, Any], payload: bytes = b"",
                  timeout: float = 10.0) -> tuple[dict[str, Any], bytes]:
    """One request/response over the control socket (asyncio)."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_unix_connection(socket_path)
        try:
            writer.write(frame(header, payload))
            await writer.drain()
            reply = await read_frame(reader)
        finally:
            writer.close()
    if reply is None:
        raise ConnectionError(f"{socket_path}: no reply")
    return reply
