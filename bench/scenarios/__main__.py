"""``python -m bench.scenarios [--quick] [--only NAME …]``: run the labelled scenarios, print and save the scores."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.scenarios.catalogue import SCENARIOS
from bench.scenarios.runner import run_scenarios

RESULTS = Path(__file__).resolve().parents[1] / "results" / "scenarios.json"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def report(results: dict[str, Any]) -> str:
    lines = ["Settings changed for the run (all others default):"]
    for name, setting in results["settings"].items():
        lines.append(f"  {name} = {setting['value']}: {setting['why']}")
    lines.append(f"Traffic: {results['traffic_s']} s, {len(results['scenarios'])} scenarios.")
    lines.append("")
    lines.append(f"{'detector':<22}{'attacks':>8}{'detected':>9}{'missed':>7}{'false':>6}{'tta p50':>9}{'tta p95':>9}")
    for rule, row in results["detectors"].items():
        tta = row.get("time_to_alert_ms", {})
        lines.append(
            f"{rule:<22}{row.get('attacks', 0):>8}{len(row.get('detected', [])):>9}{len(row.get('missed', [])):>7}"
            f"{len(row['false_alerts']):>6}{ms(tta.get('p50')):>9}{ms(tta.get('p95')):>9}"
        )
        for name in row.get("missed", []):
            lines.append(f"    missed: {name}")
        for name in row["false_alerts"]:
            lines.append(f"    false alert on: {name}")
    lines.append("")
    for s in results["scenarios"]:
        verdict = "ok  " if s["ok"] else "FAIL"
        lines.append(f"{verdict} {s['kind']:<6} {s['name']:<32} expect {','.join(s['expect']) or '-':<20} "
                     f"raised {','.join(s['raised']) or '-'}  ({s['requests']} requests, {s['duration_s']} s)")
        if s["error"]:
            lines.append("       error: " + s["error"].strip().splitlines()[-1])
        if not s["ok"]:
            for alert in s["alerts"]:
                lines.append(f"       {alert['rule']} on {alert['entity']}: {' '.join(alert['reasons'])}")
    for alert in results["unexplained_alerts"]:
        lines.append(f"unexplained alert: {alert['rule']} on {alert['entity_kind']}:{alert['entity_label']}")
    tta = results["time_to_alert_ms"]
    lines.append("")
    lines.append("Time to alert (tta): from the answer of the request that carried the finding's event to the alert "
                 "being visible in the alerts API (polled every 100 ms).")
    lines.append(f"Time to alert over all detections: p50 {ms(tta['p50'])} ms, p95 {ms(tta['p95'])} ms (target p95 "
                 "<= 5000 ms).")
    lines.append(f"Every attack alerted: {results['all_attacks_alerted']}; no benign one alerted: "
                 f"{results['no_benign_alerted']}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scenarios", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="only the fast subset, shortened")
    parser.add_argument("--only", nargs="*", default=[], help="scenario names to run")
    parser.add_argument("--workers", type=int, default=8, help="scenarios run at once")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    chosen = [s for s in SCENARIOS if (not args.only or s.name in args.only) and (s.quick or not args.quick)]
    unknown = set(args.only) - {s.name for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    results = run_scenarios(chosen, quick=args.quick, workers=args.workers)
    print(report(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"Written to {args.out}")
    return 0 if results["all_attacks_alerted"] and results["no_benign_alerted"] else 1


if __name__ == "__main__":
    sys.exit(main())
