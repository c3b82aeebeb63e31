"""The DRBD stand-in's replicator process: the daemon, answering drbdadm/drbdsetup on its control socket.

    python -m hatui.lab.drbd.replicator --config drbd.json [--daemon --pidfile F]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Callable

from hatui.lab.drbd import commands, process
from hatui.lab.drbd.daemon import Daemon, DaemonConfig


async def serve(config: DaemonConfig, ready: Callable[[str | None], None] | None = None) -> None:
    daemon = Daemon(config, cli=commands.run)
    loop = asyncio.get_running_loop()
    try:
        await daemon.start()
    except Exception as exc:
        process.tell_started(ready, exc)
        raise
    process.tell_started(ready)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: loop.create_task(daemon.stop()))
    await daemon.stopped.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hatui-drbd-standin", description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="daemon configuration (JSON)")
    process.add_options(ap)
    args = ap.parse_args(argv)
    config = DaemonConfig.load(args.config)
    ready = process.start(args)
    try:
        asyncio.run(serve(config, ready))
    except Exception as exc:
        if ready:
            ready(f"{type(exc).__name__}: {exc}\n")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
