"""Loopback HTTP servers for testing load runs (tests, benchmarks, the drill runner's fakes).

Only ever bind 127.0.0.1. Each server counts what it did, and can be stopped and started
again on the same port (to make an outage of a known length).

Modes:
- "ok": answer `200` with "served by <name>" (and `X-Served-By` when `served_by_header`);
- "status": answer with `status` (e.g. 503);
- "silent": accept and read the request, never answer (client timeouts);
- "reset": read the request, then close with SO_LINGER 0 (RST: connreset);
- "close": read the request, close without a reply (other);
- "garbage": answer something that is not HTTP (other);
- "chunked": a chunked reply;
- "eof": a reply without Content-Length, ended by the close.
"""

from __future__ import annotations

import asyncio
import socket
import struct

MODES = ("ok", "status", "silent", "reset", "close", "garbage", "chunked", "eof")


class TestHttpServer:
    __test__ = False  # not a pytest test class

    def __init__(self, *, name: str = "node1", mode: str = "ok", status: int = 200, port: int = 0,
                 served_by_header: bool = False, delay: float = 0.0, body_extra: bytes = b""):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.name = name
        self.mode = mode
        self.status = status
        self.port = port
        self.served_by_header = served_by_header
        self.delay = delay
        self.body_extra = body_extra
        self.accepted = 0  # connections accepted
        self.requests = 0  # complete requests read
        self.served = 0  # replies written in full (mode ok/status/chunked/eof)
        self.resets = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/index.html"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> "TestHttpServer":
        if self._server is not None:
            return self
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening (new connections are refused) and drop open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        try:
            await asyncio.wait_for(server.wait_closed(), 2.0)
        except asyncio.TimeoutError:
            pass

    async def __aenter__(self) -> "TestHttpServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def _body(self) -> bytes:
        return f"<html><body><p>served by {self.name}</p></body></html>\n".encode() + self.body_extra

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        try:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            self.requests += 1
            if self.delay:
                await asyncio.sleep(self.delay)
            mode = self.mode
            if mode == "silent":
                await reader.read()  # until the client gives up
                return
            if mode == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.resets += 1
                writer.transport.abort()
                return
            if mode == "close":
                return
            if mode == "garbage":
                writer.write(b"this is not HTTP\r\n\r\n")
                await writer.drain()
                return
            body = self._body()
            status = self.status if mode == "status" else 200
            head = [f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}", "Content-Type: text/html",
                    "Connection: close"]
            if self.served_by_header:
                head.append(f"X-Served-By: {self.name}")
            if mode == "chunked":
                head.append("Transfer-Encoding: chunked")
                payload = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
            elif mode == "eof":
                payload = body
            else:
                head.append(f"Content-Length: {len(body)}")
                payload = body
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
            await writer.drain()
            self.served += 1
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.close()


def closed_port() -> tuple[socket.socket, int]:
    """A loopback port nothing listens on (bound, not listening: connections are refused).
    Keep the socket open while you use the port; close it afterwards."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]
