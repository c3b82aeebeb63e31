"""Failover drills: plan, runner, timeline, results. Core code: no Textual."""
