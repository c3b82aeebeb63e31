"""One HTTP GET over a fresh TCP connection: is the service on a VIP up, and which node served it."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

# The lab's page says "served by NODE" and sends X-Served-By; real services may do either.
SERVED_BY_HEADER = re.compile(rb"^x-served-by:\s*(\S+)", re.I | re.M)
SERVED_BY_BODY = re.compile(rb"served by (\S+)")
# hatui's own health checks carry this query so server logs can tell them from real traffic.
CHECK_MARKER = "hatui-check=1"


def with_marker(uri: str, marker: str) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{marker}"


@dataclass
class HttpCheck:
    ok: bool
    status: int | None
    served_by: str | None
    error: str | None
    latency_ms: float


def served_by(response: bytes) -> str | None:
    match = SERVED_BY_HEADER.search(response) or SERVED_BY_BODY.search(response)
    return match.group(1).decode("ascii", "replace") if match else None


async def http_get(address: str, uri: str = "/", *, port: int = 80, timeout: float = 1.0,
                   host_header: str | None = None) -> HttpCheck:
    started = time.monotonic()

    def done(ok: bool, status: int | None, by: str | None, error: str | None) -> HttpCheck:
        return HttpCheck(ok, status, by, error, round((time.monotonic() - started) * 1000, 1))

    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address, port)
            writer.write(f"GET {uri} HTTP/1.1\r\nHost: {host_header or address}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            response = await reader.read(65536)
    except TimeoutError:
        return done(False, None, None, f"timeout after {timeout:g} s")
    except ConnectionRefusedError:
        return done(False, None, None, "connection refused")
    except ConnectionResetError:
        return done(False, None, None, "connection reset")
    except OSError as exc:
        return done(False, None, None, exc.strerror or str(exc))
    finally:
        if writer is not None:
            writer.close()
    match = re.match(rb"HTTP/1\.[01] (\d{3})", response)
    if not match:
        return done(False, None, None, "not an HTTP response")
    status = int(match.group(1))
    return done(status < 400, status, served_by(response), None if status < 400 else f"HTTP {status}")
