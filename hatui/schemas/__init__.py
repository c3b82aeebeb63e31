"""JSON Schemas of what hatui writes: results.schema.json (hatui.results/1), status.schema.json (hatui.status/1)."""
