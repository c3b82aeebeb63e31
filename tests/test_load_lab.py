"""The load engine on the real lab: a graceful failover during a run is exactly one outage."""

from __future__ import annotations

import asyncio

import pytest

from hatui.load import LoadRun, LoadSpec, ProbeSpec, summarize

pytestmark = pytest.mark.lab


async def test_graceful_failover_during_a_run_is_one_outage(lab):
    from hatui.lab import faults
    from hatui.lab.pairs import wait_stable

    pair = lab.pairs["native"]
    await asyncio.to_thread(wait_stable, lab, pair)
    run = LoadRun(LoadSpec(f"http://{pair.vip_address}/index.html", 50, 500, timeout=1.0),
                  probe=ProbeSpec(interval=0.010, timeout=0.5))
    task = asyncio.create_task(run.run())
    try:
        await asyncio.sleep(2.0)
        await asyncio.to_thread(faults.inject, lab, "master", "stop-heartbeat")
        summary = await asyncio.wait_for(task, 60)
    finally:
        await asyncio.to_thread(faults.inject, lab, "master", "start-heartbeat")
    assert summary.outage_stream == "probe" and len(summary.outages) == 1, summary.outages
    (outage,) = summary.outages
    assert 0.1 <= outage.duration <= 5.0, outage
    assert (outage.served_by_before, outage.served_by_after) == ("master", "slave")
    # nginx is stopped before the VIP leaves (refused), the VIP is on neither node for a moment
    # (timeouts), and connections open when nginx stops are reset.
    seen = {k for k, v in outage.errors_by_class.items() if v}
    assert seen & {"connrefused", "client-timo"} and seen <= {"connrefused", "client-timo", "connreset"}, seen
    assert summary.requests == 500 and summary.success < 500
    assert sum(summary.errors[k] for k in ("connrefused", "client-timo", "connreset")) == summary.error_total
    await asyncio.to_thread(wait_stable, lab, pair)
