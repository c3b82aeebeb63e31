"""Collectors: pure parsers of cluster-state outputs (DRBD, Heartbeat, Pacemaker) and their models.

Every parser is a pure function (text in, dataclasses out), never does IO and never raises;
what it could not understand is reported in a ``problems: list[str]`` field of its result.
"""
