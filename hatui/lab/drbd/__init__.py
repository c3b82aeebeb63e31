"""DRBD stand-in for the local lab: real replication between the pair, DRBD 9's commands and output.

The lab's kernel has no DRBD module, so this package stands in for it. It is a *stand-in*, not
DRBD: a user-space replicator per host (`hatui.lab.drbd.daemon`) keeps each resource's volume in
a file in the host's private directory and replicates it to the peer over the replication
network with protocol C semantics, tracks out-of-sync blocks while disconnected, resyncs them at
`resync_rate_kib`, detects split brain, and answers `drbdadm` / `drbdsetup` inside the host in
DRBD 9's formats with DRBD's error texts and exit codes. hatui's collectors read it exactly
like real DRBD.

`lab up` and every boot of a pair member (hatui.lab.hosts) use

    available()                                  True when the stand-in can run on this machine
    node.prepare_node(lab, pair, host, node_dir) volume files, daemon config, drbdadm/drbdsetup wrappers,
                                                 Heartbeat's resource.d/drbddisk, nginx drop-in (write path)
    node.start_node(lab, pair, host)             after the host booted, before Heartbeat: put the
                                                 commands on the host's PATH, start the replicator
                                                 and the write service, wait for the peer (if up)

Inside a host (the replicator and the write service run in the host's network, UTS and PID
namespaces, so they listen on its addresses and die with it; see hatui.lab.drbd.node):

    /usr/local/sbin/drbdadm, drbdsetup      wrappers (a bind mount of NODE/drbd/sbin, this host only)
    /run/hatui-drbd/control.sock            the replicator's control socket
    /var/log/hatui-drbd.log                 its "kernel log" (DRBD 9 kernel message formats)
    /etc/ha.d/resource.d/drbddisk           Heartbeat v1 resource script (start = primary, stop = secondary)
    127.0.0.1:8079                          the write service (nginx proxies POST /write, GET /read/ID)

Modules: daemon (replicator), replicator (its process), meta (generations, bitmap, handshake
verdict), formats (DRBD 9 output), errors (DRBD's refusals), commands (drbdadm/drbdsetup), client
(their stdlib-only front end), writesvc (write service), process (running in the background),
node (install/start in a lab host), wire (framing).

Set HATUI_DRBD_STANDIN=0 to build the lab without it (drbddisk is then left out of haresources).
"""

from __future__ import annotations

import os
import shutil
import sys

CONTROL_SOCKET = "/run/hatui-drbd/control.sock"     # inside a host
RUN_DIR = "/run/hatui-drbd"
KERNEL_LOG = "/var/log/hatui-drbd.log"
WRITE_PORT = 8079
MIN_KERNEL = (5, 2)                                   # open_tree/move_mount (bind into a host's namespace)


def _kernel_ok() -> bool:
    try:
        release = os.uname().release.split("-", 1)[0].split(".")
        return tuple(int(x) for x in release[:2]) >= MIN_KERNEL
    except (ValueError, AttributeError):
        return False


def available() -> bool:
    """True when the stand-in works here: Linux with the new mount API, nsenter, Python 3.11+."""
    if os.environ.get("HATUI_DRBD_STANDIN", "1").strip().lower() in ("0", "no", "off", "false"):
        return False
    return (sys.platform.startswith("linux") and sys.version_info >= (3, 11) and _kernel_ok()
            and shutil.which("nsenter", path="/usr/bin:/bin:/usr/sbin:/sbin") is not None)
