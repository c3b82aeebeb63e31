"""Cluster readings, chained: each reading arms a one-shot timer for the next, so polls never
overlap and a slow cluster slows the refresh instead of piling polls up. The worker only posts
`StatePolled` / `PollFailed`; the app's handlers hand the reading out and call `arm()`."""

from __future__ import annotations

from hatui.ui.messages import PollFailed, StatePolled


class Poller:
    def __init__(self, app) -> None:
        self.app = app
        self.busy = False  # a poll is in flight
        self._timer = None

    def start(self) -> None:
        if self.busy:
            return
        self.busy = True
        self.app.run_worker(self._read(), group="poll", exit_on_error=False)

    async def _read(self) -> None:
        timeout = max(2.0, 2 * self.app.refresh_s)  # a hung host reads as unreachable, not as a stuck UI
        try:
            state = await self.app.core.poll(timeout=timeout)
        except Exception as exc:  # a bad reading must never take the console down
            self.app.post_message(PollFailed(f"{type(exc).__name__}: {exc}"))
        else:
            self.app.post_message(StatePolled(state))

    def arm(self) -> None:
        """The reading was handled: the next one in `refresh_s`."""
        self.busy = False
        self.stop()
        self._timer = self.app.set_timer(self.app.refresh_s, self.start, name="poll")

    def now(self) -> None:
        """Poll now (r), unless a poll is already under way."""
        if not self.busy:
            self.stop()
            self.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
