"""The DRBD stand-in's refusals: DRBD's codes and texts, as drbdsetup prints them."""

from __future__ import annotations

# DRBD's texts (drbd_strings.c / drbd_nl.c) for the refusals the stand-in produces
SS_TWO_PRIMARIES = (-1, "Multiple primaries not allowed by config")
SS_NO_UP_TO_DATE_DISK = (-2, "Need access to UpToDate data")
SS_RESYNC_RUNNING = (-7, "Can not start OV/resync since it is already active")
ERR_NET_CONFIGURED = (125, "Device has a net-config (use disconnect first)")
ERR_MINOR_INVALID = (127, "Device minor not allocated")
ERR_RES_NOT_KNOWN = (158, "Unknown resource")
ERR_MINOR_EXISTS = (161, "Minor or volume exists already (delete it first)")


class DrbdError(Exception):
    """A refused command: `text` as drbdsetup prints it (without the object prefix), and its exit code."""

    def __init__(self, text: str, rc: int):
        super().__init__(text)
        self.text, self.rc = text, rc


def state_change_failed(code: tuple[int, str]) -> DrbdError:
    rc = {-2: 17, -3: 16, -16: 5}.get(code[0], 11)
    return DrbdError(f"State change failed: ({code[0]}) {code[1]}", rc)


def failure(code: tuple[int, str]) -> DrbdError:
    return DrbdError(f"Failure: ({code[0]}) {code[1]}", 10)
