"""``python -m hatui.lab.pve --state-dir DIR [--listen 127.0.0.1:8006] [--nodes pve1,pve2] ...``

Runs the Proxmox VE API emulator in the foreground until SIGTERM/SIGINT. See the package
docstring (``hatui/lab/pve/__init__.py``) for the files it writes.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from hatui.lab.pve import READY_FILE, certs
from hatui.lab.pve.auth import Auth
from hatui.lab.pve.backend import load_backend
from hatui.lab.pve.cluster import OFFLINE_FILE, PVE_VERSION, STATE_FILE, Cluster
from hatui.lab.pve.server import App, PveServer, make_ssl_context


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    host = host.strip("[]")
    return host, int(port)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hatui.lab.pve", description="Proxmox VE API emulator for the hatui lab (HTTPS, loopback only).")
    p.add_argument("--state-dir", required=True, type=Path, help="directory for certificates, secrets, state.json, logs")
    p.add_argument("--listen", default="127.0.0.1:8006", type=parse_listen, help="HOST:PORT (loopback only; port 0 = pick a free one) [127.0.0.1:8006]")
    p.add_argument("--nodes", default="pve1,pve2", help="comma-separated node names; the first is the node answering [pve1,pve2]")
    p.add_argument("--cluster-name", default="lab")
    p.add_argument("--offline", default=None, metavar="NODE[,NODE]", help=f"write these nodes into <state-dir>/{OFFLINE_FILE} at start (empty string clears it)")
    p.add_argument("--qdevice", action="store_true", help="count one extra always-online quorum vote (a 2-node cluster keeps quorum with one node down)")
    p.add_argument("--bridges", default="vmbr0,vmbr1", help="bridges that exist on every node; a NIC on another bridge fails at VM start [vmbr0,vmbr1]")
    p.add_argument("--token-id", default="hatui@pve!tui", help="API token id created at start [hatui@pve!tui]")
    p.add_argument("--root-password-file", type=Path, default=None, help="file holding root@pam's password (default: generated <state-dir>/root.password)")
    p.add_argument("--cert", type=Path, help="server certificate (PEM); default: generated in the state dir")
    p.add_argument("--key", type=Path, help="server private key (PEM) for --cert")
    p.add_argument("--ca", type=Path, help="CA certificate that signed --cert (recorded for clients)")
    p.add_argument("--hostname", action="append", default=[], help="extra DNS name / IP for the generated certificate (repeatable)")
    p.add_argument("--regen-cert", action="store_true", help="generate a new CA and certificate even if some exist")
    p.add_argument("--backend", default=None, metavar="MODULE:CLASS", help="VM backend (default: in-memory)")
    p.add_argument("--backend-opt", action="append", default=[], metavar="KEY=VALUE", help="option for the backend constructor (repeatable)")
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply every task duration by this [1.0]")
    p.add_argument("--auth-fail-delay", type=float, default=3.0, help="seconds before answering a 401 (PVE: 3) [3.0]")
    p.add_argument("--ha-interval", type=float, default=2.0, help="seconds between HA manager rounds (PVE: ~10) [2.0]")
    p.add_argument("--allow-non-loopback", action="store_true", help="allow listening on a non-loopback address (not for the lab)")
    p.add_argument("--log-file", type=Path, default=None, help="request/event log (default: <state-dir>/emulator.log)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _write_ready(state_dir: Path, info: dict[str, object]) -> None:
    tmp = state_dir / (READY_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, state_dir / READY_FILE)


class _Refused(Exception):
    """Options the emulator will not run with (exit 2)."""


def _listen_host(args: argparse.Namespace) -> str:
    host = args.listen[0]
    try:
        is_loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = host == "localhost"
    if not is_loopback and not args.allow_non_loopback:
        raise _Refused(f"refusing to listen on non-loopback address {host}")
    return "127.0.0.1" if host == "localhost" else host


def _nodes(args: argparse.Namespace, state_dir: Path) -> list[str]:
    """--nodes; --offline goes into the offline file."""
    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()]
    if not nodes:
        raise _Refused("--nodes is empty")
    if args.offline is not None:
        offline = [n.strip() for n in args.offline.split(",") if n.strip()]
        unknown = [n for n in offline if n not in nodes]
        if unknown:
            raise _Refused(f"--offline names unknown node(s): {', '.join(unknown)}")
        (state_dir / OFFLINE_FILE).write_text("".join(n + "\n" for n in offline))
    return nodes


def _make_server(args: argparse.Namespace, state_dir: Path, host: str, nodes: list[str]):
    """(tls, auth, backend, cluster, server); raises OSError, ValueError or ImportError."""
    tls = certs.ensure(
        state_dir,
        [host, "localhost", "127.0.0.1", "::1", *nodes, *args.hostname],
        cert_file=args.cert,
        key_file=args.key,
        ca_file=args.ca,
        regenerate=args.regen_cert,
    )
    auth = Auth(state_dir, args.token_id, args.root_password_file)
    options = dict(opt.split("=", 1) for opt in args.backend_opt if "=" in opt)
    backend = load_backend(args.backend, state_dir, options)
    cluster = Cluster(
        state_dir,
        nodes,
        backend,
        cluster_name=args.cluster_name,
        time_scale=args.time_scale,
        bridges=[b for b in args.bridges.split(",") if b],
        qdevice=args.qdevice,
        ha_interval=args.ha_interval,
    )
    cluster.fingerprint = tls.fingerprint
    server = PveServer((host, args.listen[1]), App(cluster, auth, auth_fail_delay=args.auth_fail_delay),
                       make_ssl_context(str(tls.cert_file), str(tls.key_file)))
    return tls, auth, backend, cluster, server


def _stop_on_signals(server: PveServer) -> None:
    stopping = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    state_dir: Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    (state_dir / READY_FILE).unlink(missing_ok=True)

    logging.basicConfig(
        filename=str(args.log_file or state_dir / "emulator.log"),
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        host = _listen_host(args)
        nodes = _nodes(args, state_dir)
        tls, auth, backend, cluster, server = _make_server(args, state_dir, host, nodes)
    except (_Refused, OSError, ValueError, ImportError) as exc:
        print(f"hatui-pve: {exc}", file=sys.stderr)
        return 2

    real_port = server.server_address[1]
    url_host = f"[{host}]" if ":" in host else host
    url = f"https://{url_host}:{real_port}"
    cluster.start_background()
    _stop_on_signals(server)
    _write_ready(
        state_dir,
        {
            "pid": os.getpid(),
            "url": url,
            "api": url + "/api2/json",
            "host": host,
            "port": real_port,
            "nodes": nodes,
            "version": PVE_VERSION,
            "fingerprint": tls.fingerprint,
            "ca_file": str(tls.ca_file),
            "cert_file": str(tls.cert_file),
            "token_id": auth.token_id,
            "token_secret_file": str(auth.token_secret_file),
            "user": "root@pam",
            "root_password_file": str(auth.root_password_file),
            "offline_file": str(state_dir / OFFLINE_FILE),
            "state_file": str(state_dir / STATE_FILE),
        },
    )
    print(f"hatui PVE emulator {PVE_VERSION} listening on {url} (nodes {','.join(nodes)}; fingerprint {tls.fingerprint})", flush=True)
    logging.getLogger("hatui.lab.pve").info("listening on %s", url)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        cluster.stop_background()
        with cluster.lock:
            cluster.save()
        close = getattr(backend, "close", None)
        if callable(close):
            try:
                close()
            except Exception as exc:  # pragma: no cover - best effort at exit
                logging.getLogger("hatui.lab.pve").warning("backend close failed: %s", exc)
        (state_dir / READY_FILE).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
