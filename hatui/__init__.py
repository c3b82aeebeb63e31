"""hatui: a keyboard-driven console for high-availability failover drills."""

__version__ = "0.1.0"
