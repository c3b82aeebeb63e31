"""Is a pair stable? Who holds its VIP, who answers on it, what Heartbeat says on each member.

    wait_stable(lab, pair)        VIP served by the master and Heartbeat out of `transition`
"""

from __future__ import annotations

import http.client
import time

from hatui.config import Lab, Pair
from hatui.lab import netns as nx
from hatui.lab.hosts import exec_in
from hatui.lab.state import LabError, lab_paths, load_state

UP_STABLE_TIMEOUT_S = 45.0


def rscstatus(lab: Lab, host: str) -> str | None:
    """`cl_status rscstatus` on a host: local/all/none/transition, or None (heartbeat stopped / host off)."""
    try:
        proc = exec_in(lab, host, ["cl_status", "rscstatus"], timeout=10)
    except LabError:
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def heartbeat_running(lab: Lab, host: str) -> bool:
    try:
        return exec_in(lab, host, ["cl_status", "hbstatus"], timeout=10).returncode == 0
    except LabError:
        return False


def vip_holders(lab: Lab, pair: Pair) -> list[str]:
    """Members of a pair whose VIP interface holds the VIP right now."""
    state = load_state(lab_paths(lab)) or {}
    holders = []
    for member in (pair.master, pair.slave):
        ns = nx.host_netns(member)
        if member not in state.get("hosts", {}) or not nx.netns_exists(ns):
            continue
        addrs = nx.addresses(ns, pair.vip_interface).get(pair.vip_interface, [])
        if any(a.ip == pair.vip.ip for a in addrs):
            holders.append(member)
    return holders


def http_served_by(address: str, port: int = 80, path: str = "/index.html", timeout: float = 1.0) -> str | None:
    """Who answers http://address/path (X-Served-By header), or None if nobody does."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        if resp.status != 200:
            return None
        served = resp.getheader("X-Served-By")
        if served:
            return served
        return body.split("served by ", 1)[1].strip() if "served by " in body else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def pair_stable(lab: Lab, pair: Pair) -> tuple[bool, str]:
    """(stable, why not): the master serves the VIP alone and Heartbeat is out of `transition`."""
    served = http_served_by(str(pair.vip.ip), timeout=0.5)
    if served != pair.master:
        return False, f"VIP served by {served or 'nobody'}"
    holders = vip_holders(lab, pair)
    if holders != [pair.master]:
        return False, f"VIP held by {', '.join(holders) or 'nobody'}"
    for member in (pair.master, pair.slave):
        rs = rscstatus(lab, member)
        if rs is None or rs == "transition":
            return False, f"{member}: cl_status rscstatus {rs or 'not answering'}"
    return True, "stable"


def wait_stable(lab: Lab, pair: Pair, timeout_s: float = UP_STABLE_TIMEOUT_S) -> float:
    t0 = time.monotonic()
    why = ""
    while time.monotonic() - t0 < timeout_s:
        ok, why = pair_stable(lab, pair)
        if ok:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise LabError(f"pair {pair.name} not stable after {timeout_s:g} s ({why})")


