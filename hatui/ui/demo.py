"""`python -m hatui.ui.demo [--theme NAME] [--read-only] [--healthy]`: the UI on the fake core
(canned readings, nothing sent anywhere) - for trying keys and themes without a lab."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hatui.ui.demo")
    parser.add_argument("--theme")
    parser.add_argument("--read-only", action="store_true")
    parser.add_argument("--healthy", action="store_true", help="every pair in its steady state")
    parser.add_argument("--drill", action="store_true", help="d plays a canned drill (slowly)")
    args = parser.parse_args(argv)

    from hatui.ui.app import HatuiApp
    from hatui.ui.fake import FakeCore, demo_drill_events
    from hatui.ui.fake_cluster import build_state, fake_lab, healthy_outputs

    import json
    import tempfile
    from pathlib import Path

    from hatui.ui.fake import demo_results

    lab = fake_lab()
    results = Path(tempfile.mkdtemp(prefix="hatui-demo-"))
    with open(results / "journal.jsonl", "w", encoding="utf-8") as journal:
        for run in demo_results(lab):
            journal.write(json.dumps({"v": 1, "kind": "run-finished", "result": run.to_dict()}) + "\n")
    core = FakeCore(lab, with_vms=True, results_dir=results)
    if args.healthy:
        core.state = build_state(lab, healthy_outputs())
    if args.drill:
        script: list = []
        for event in demo_drill_events(lab):
            script += [event, 0.2]
        core.drill_script, core.drill_hold = script, True
    app = HatuiApp(core, theme=args.theme, read_only=args.read_only or None)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    raise SystemExit(main())
