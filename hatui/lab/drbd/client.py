"""`drbdadm` / `drbdsetup` of the DRBD stand-in: a thin client of the daemon's control socket.

    python3 -S client.py --socket /run/hatui-drbd/control.sock drbdadm status r0

Standard library only and no hatui import, so it starts fast (`python -S`) and can be copied
next to the wrapper scripts inside a lab host. The daemon does the work and answers with
stdout/stderr text and the exit code; this prints them and exits with it. Without a daemon it
fails like drbd-utils does without the kernel module (exit 20).
"""

import json
import os
import socket
import struct
import sys

DEFAULT_SOCKET = "/run/hatui-drbd/control.sock"
_HDR = struct.Struct("!I")


def _recv_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _frames(sock):
    while True:
        raw = _recv_exactly(sock, _HDR.size)
        if raw is None:
            return
        (n,) = _HDR.unpack(raw)
        body = _recv_exactly(sock, n)
        if body is None:
            return
        header = json.loads(body)
        if header.get("len"):
            _recv_exactly(sock, int(header["len"]))
        yield header


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    path = os.environ.get("HATUI_DRBD_SOCKET", DEFAULT_SOCKET)
    if len(argv) >= 2 and argv[0] == "--socket":
        path, argv = argv[1], argv[2:]
    if not argv:
        sys.stderr.write("usage: client.py [--socket PATH] drbdadm|drbdsetup ARGS...\n")
        return 1
    prog, args = os.path.basename(argv[0]), argv[1:]
    tty = sys.stdout.isatty()
    columns = 80
    if tty:
        try:
            columns = os.get_terminal_size(sys.stdout.fileno()).columns
        except OSError:
            pass
    request = json.dumps({"op": "cli", "prog": prog, "argv": args, "tty": tty, "columns": columns}).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sys.stderr.write("Could not connect to 'drbd' generic netlink family\n")
        return 20
    rc = None
    got_output = False
    try:
        sock.sendall(_HDR.pack(len(request)) + request)
        for header in _frames(sock):
            got_output = True
            if "out" in header:
                sys.stdout.write(header["out"])
                sys.stdout.flush()
            if "err" in header:
                sys.stderr.write(header["err"])
                sys.stderr.flush()
            if "rc" in header:
                rc = int(header["rc"])
                break
    except KeyboardInterrupt:
        rc = 0
    except BrokenPipeError:
        try:
            sys.stdout = None
        except Exception:
            pass
        rc = 0
    finally:
        sock.close()
    if rc is None:  # the stream ended without an exit code: the "module" went away (drbdsetup: 121)
        rc = 121 if got_output else 20
    return rc


if __name__ == "__main__":
    sys.exit(main())
