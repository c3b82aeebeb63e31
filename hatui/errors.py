"""Exit codes and the error types that carry a user-facing message (never a traceback)."""

from __future__ import annotations

# Exit codes for the whole tool.
EXIT_OK = 0
EXIT_THRESHOLD = 1  # a drill broke a threshold
EXIT_USAGE = 2  # usage or config error
EXIT_REFUSED = 3  # refused by a safety check


class HatuiError(Exception):
    """An error whose message is meant for the user; the CLI prints it and exits with `exit_code`."""

    exit_code = EXIT_USAGE


class UsageError(HatuiError):
    exit_code = EXIT_USAGE


class RefusedError(HatuiError):
    """A safety check refused to go on (preflight failed, lab not in the expected state...)."""

    exit_code = EXIT_REFUSED
