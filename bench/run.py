"""`make bench`: run every benchmark, then write bench/report.md and bench/report.json.

Each ``bench/bench_*.py`` is a script that writes ``bench/results/<area>.json`` as
``{"area": ..., "results": [{"name", "value", "unit", "goal", "notes"}]}``. Benchmarks report
medians of several rounds measured in this one run; nothing here passes or fails on timing.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def main() -> int:
    RESULTS.mkdir(exist_ok=True)
    failures = []
    # `python bench/run.py [area ...]` reruns only those benchmarks; the report covers every result.
    only = {f"bench_{name}.py" for name in sys.argv[1:]}
    for script in sorted(HERE.glob("bench_*.py")):
        if only and script.name not in only:
            continue
        print(f"== {script.name}", flush=True)
        started = time.monotonic()
        completed = subprocess.run([sys.executable, str(script)], check=False)
        if completed.returncode != 0:
            failures.append(script.name)
        print(f"   {time.monotonic() - started:.1f}s", flush=True)
    areas = [json.loads(path.read_text()) for path in sorted(RESULTS.glob("*.json"))]
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": _cpus(),
            "platform": platform.platform(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
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


# Issues 9, 17, 19 and 21's goals: (label, area, measure name, goal, met(value) or None when judged by hand).
GOALS: list[tuple[str, str, str, str, Callable[[float], bool] | None]] = [
    (
        "P1 pipeline, 1 KB",
        "pipeline",
        "pipeline_emails_per_second_1kb",
        ">= 1,000 emails/s",
        lambda v: v >= 1000,
    ),
    ("P1 pipeline / floor, 1 KB", "pipeline", "pipeline / floor, 1kb", ">= 0.7", lambda v: v >= 0.7),
    (
        "P1 pipeline, 100 KB attachment",
        "pipeline",
        "pipeline_emails_per_second_100kb_attachment",
        ">= 1,000 emails/s",
        lambda v: v >= 1000,
    ),
    (
        "P1 pipeline / floor, 100 KB",
        "pipeline",
        "pipeline / floor, 100kb_attachment",
        ">= 0.7",
        lambda v: v >= 0.7,
    ),
    (
        "P2 cached GET /v1/templates rps",
        "templates_api",
        "cached list rps (uvicorn)",
        ">= 3,000",
        lambda v: v >= 3000,
    ),
    (
        "P2 cached GET /v1/templates p99",
        "templates_api",
        "cached list p99 (uvicorn)",
        "<= 20 ms",
        lambda v: v <= 20,
    ),
    ("P3 campaign build 100k rows", "queue", "campaign build, 100k rows", "<= 10 s", lambda v: v <= 10),
    (
        "P3 campaign build peak RSS",
        "queue",
        "campaign build peak RSS, 100k rows",
        "<= 300 MB",
        lambda v: v <= 300,
    ),
    (
        "P4 pacing achieved/allowed",
        "pipeline",
        "quota pacing, achieved / allowed",
        ">= 95 %",
        lambda v: v >= 95,
    ),
    (
        "P4 Gmail quota errors",
        "pipeline",
        "quota pacing, Gmail quota errors",
        "0",
        lambda v: v == 0,
    ),
    ("P5 schedule lateness p99", "queue", "schedule lateness p99", "<= 1,000 ms", lambda v: v <= 1000),
    (
        "P5 earliest send vs send_at",
        "queue",
        "schedule lateness min",
        ">= 0 ms (never early)",
        lambda v: v >= 0,
    ),
    ("P6 all-in-one RSS at idle", "rss", "all-in-one RSS at idle", "<= 250 MB", lambda v: v <= 250),
    # Issue 17: the separate-services topology (`mailmerger run-split`), bench_split.py.
    ("split: P1 pipeline, 1 KB", "split", "P1 emails/s, 1kb", ">= 1,000 emails/s", lambda v: v >= 1000),
    (
        "split: P1 pipeline, 100 KB attachment",
        "split",
        "P1 emails/s, 100kb_attachment",
        ">= 1,000 emails/s",
        lambda v: v >= 1000,
    ),
    ("split: P1 / all-in-one, 1 KB", "split", "P1 / all-in-one pipeline, 1kb", ">= 0.9", lambda v: v >= 0.9),
    (
        "split: P1 / all-in-one, 100 KB",
        "split",
        "P1 / all-in-one pipeline, 100kb_attachment",
        ">= 0.9",
        lambda v: v >= 0.9,
    ),
    ("split: P1 / durable floor, 1 KB", "split", "P1 / durable floor, 1kb", ">= 0.7", lambda v: v >= 0.7),
    (
        "split: P1 / durable floor, 100 KB",
        "split",
        "P1 / durable floor, 100kb_attachment",
        ">= 0.7",
        lambda v: v >= 0.7,
    ),
    (
        "split: P1 scaling, 4 / 1 sender workers",
        "split",
        "P1 scaling, 4 / 1 sender workers",
        "none (reported)",
        None,
    ),
    (
        "split: largest process RSS at idle",
        "split",
        "largest process RSS at idle",
        "<= 80 MB each",
        lambda v: v <= 80,
    ),
    (
        "split: send-now latency p99 during a ~1,000/s campaign",
        "split",
        "send-now latency p99 during a campaign",
        "<= 250 ms",
        lambda v: v <= 250,
    ),
    # Issue 19: the legacy template list (bench_legacy.py), 5 x the original backend's 464/s.
    (
        "legacy GET /api/templates/get-all-templates rps",
        "legacy",
        "legacy get-all-templates rps",
        ">= 2,320",
        lambda v: v >= 2320,
    ),
    (
        "legacy GET /api/templates/get-all-templates p99",
        "legacy",
        "legacy get-all-templates p99",
        "<= 20 ms",
        lambda v: v <= 20,
    ),
    (
        "split: P2 cached GET /v1/templates rps via nginx",
        "split",
        "P2 cached list rps (nginx)",
        ">= 3,000",
        lambda v: v >= 3000,
    ),
    (
        "split: P2 cached GET /v1/templates p99 via nginx",
        "split",
        "P2 cached list p99 (nginx)",
        "<= 20 ms",
        lambda v: v <= 20,
    ),
    # Issue 21: campaign dispatch with a 1,000,000-entry suppression list (bench_queue.py).
    (
        "campaign dispatch with 1M suppressions / without",
        "queue",
        "campaign dispatch rate, 1M suppressions / none",
        ">= 0.90",
        lambda v: v >= 0.9,
    ),
    # Issue 21: webhook deliveries to a local receiver (bench_webhooks.py); each dispatcher replica
    # runs a courier, so the deployment's rate is that of its replicas together.
    (
        "webhook delivery, one courier",
        "webhooks",
        "delivery throughput, one courier",
        ">= 500 events/s",
        lambda v: v >= 500,
    ),
    (
        "webhook delivery, 2 couriers",
        "webhooks",
        "delivery throughput, 2 couriers (dispatcher replicas)",
        ">= 500 events/s",
        lambda v: v >= 500,
    ),
    # Issue 20: the sender's mailbox watcher (bench_watcher.py): Gmail units it spends per watched
    # account at the default 300 s poll, and what 10,000 watched accounts cost the project and us.
    (
        "watcher units per account-hour at 300 s (idle)",
        "watcher",
        "watcher units per account-hour at 300 s (idle)",
        "<= 30",
        lambda v: v <= 30,
    ),
    (
        "watcher units per account-hour at 300 s (typical day, messages.get 20)",
        "watcher",
        "watcher units per account-hour at 300 s (typical day, messages.get 20)",
        "none (reported)",
        None,
    ),
    (
        "10,000 accounts: share of project minute quota (messages.get 5)",
        "watcher",
        "10,000 accounts: share of project minute quota (typical day, messages.get 5)",
        "<= 1 %",
        lambda v: v <= 1,
    ),
    (
        "10,000 accounts: share of project minute quota (messages.get 20)",
        "watcher",
        "10,000 accounts: share of project minute quota (typical day, messages.get 20)",
        "<= 1 %",
        lambda v: v <= 1,
    ),
    ("10,000 accounts: watcher cores", "watcher", "10,000 accounts: watcher cores", "<= 1", lambda v: v <= 1),
]


def _summary(areas: list[dict[str, Any]]) -> list[str]:
    found = {(a["area"], r["name"]): r for a in areas for r in a["results"]}
    lines = ["## Goals (issues 9, 17, 19 and 21)", ""]
    lines += ["| goal | value | target | met? |", "|---|---|---|---|"]
    for label, area, name, goal, met in GOALS:
        r = found.get((area, name))
        if r is None:
            lines.append(f"| {label} | not measured | {goal} | no |")
            continue
        value = r["value"]
        numeric = isinstance(value, int | float)
        verdict = ("yes" if met(value) else "no") if met is not None and numeric else "see notes"
        lines.append(f"| {label} | {_number(value)} {r['unit']} | {goal} | {verdict} |")
    return [*lines, ""]


def _number(value: object) -> str:
    if not isinstance(value, int | float):
        return str(value)
    return f"{value:,.2f}" if abs(value) < 10 and value != int(value) else f"{value:,.1f}"


def _markdown(report: dict[str, object]) -> str:
    lines = [
        "# MailMerger benchmark report",
        "",
        f"Generated {report['generated_at']} on {report['machine']}.",
        "Values are medians of several rounds in one run; goals are targets, not assertions.",
        "",
        *_summary(report["areas"]),  # type: ignore[arg-type]
    ]
    for area in report["areas"]:  # type: ignore[attr-defined]
        lines += [
            f"## {area['area']}",
            "",
            "| measure | value | unit | goal | notes |",
            "|---|---|---|---|---|",
        ]
        for r in area["results"]:
            value = _number(r["value"])
            lines.append(
                f"| {r['name']} | {value} | {r['unit']} | {r.get('goal') or ''} | {r.get('notes') or ''} |"
            )
        lines.append("")
    if report["failed_benchmarks"]:
        lines += ["## Failed benchmarks", "", *[f"- {name}" for name in report["failed_benchmarks"]], ""]  # type: ignore[attr-defined]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
