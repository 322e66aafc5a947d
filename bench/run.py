"""`make bench`: run every benchmark, then write bench/report.md and bench/report.json.

Each ``bench/bench_*.py`` is a script that writes ``bench/results/<area>.json`` as
``{"area": ..., "results": [{"name", "value", "unit", "goal", "notes"}]}``. Benchmarks report
medians of several rounds measured in this one run; nothing here passes or fails on timing.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def main() -> int:
    RESULTS.mkdir(exist_ok=True)
    failures = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        started = time.monotonic()
        completed = subprocess.run([sys.executable, str(script)], check=False)
        if completed.returncode != 0:
            failures.append(script.name)
        print(f"   {time.monotonic() - started:.1f}s", flush=True)
    areas = [json.loads(path.read_text()) for path in sorted(RESULTS.glob("*.json"))]
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": _cpus(), "platform": platform.platform()},
        "areas": areas,
        "failed_benchmarks": failures,
    }
    (HERE / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (HERE / "report.md").write_text(_markdown(report))
    print((HERE / "report.md").read_text())
    return 1 if failures else 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def _markdown(report: dict[str, object]) -> str:
    lines = [
        "# MailMerger benchmark report",
        "",
        f"Generated {report['generated_at']} on {report['machine']}.",
        "Values are medians of several rounds in one run; goals are targets, not assertions.",
        "",
    ]
    for area in report["areas"]:  # type: ignore[attr-defined]
        lines += [
            f"## {area['area']}",
            "",
            "| measure | value | unit | goal | notes |",
            "|---|---|---|---|---|",
        ]
        for r in area["results"]:
            value = f"{r['value']:,.1f}" if isinstance(r["value"], int | float) else str(r["value"])
            lines.append(
                f"| {r['name']} | {value} | {r['unit']} | {r.get('goal') or ''} | {r.get('notes') or ''} |"
            )
        lines.append("")
    if report["failed_benchmarks"]:
        lines += ["## Failed benchmarks", "", *[f"- {name}" for name in report["failed_benchmarks"]], ""]  # type: ignore[attr-defined]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
