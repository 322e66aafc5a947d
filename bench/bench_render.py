"""Campaign hot path: render a typical template for 100,000 rows with Renderer.render_batch on one core.

The template is what a cold-email campaign looks like: a subject with one placeholder, a ~1.5 KB HTML
body with five placeholders and one {% if %}, no text part. Reports the median rows/second of five
rounds and the compile time, writes them to bench/results/render.json and prints that JSON.

Run: uv run python bench/bench_render.py
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

from mailmerger_templates.rendering import Rendered, Renderer, TemplateSource

ROWS = 100_000
ROUNDS = 5
GOAL_ROWS_PER_SECOND = 20_000
RESULTS = Path(__file__).parent / "results" / "render.json"

_FILLER = (
    "<p>We help engineering teams ship reliable software with fewer late nights and happier users.</p>\n"
)
TYPICAL = TemplateSource(
    subject="Quick question, {{ first_name }}",
    html=(
        "<html><body>\n<p>Hi {{ first_name }},</p>\n"
        + _FILLER * 6
        + "<p>I noticed {{ company }} is hiring for a {{ role }} in {{ city }}.</p>\n"
        + "{% if referrer %}<p>{{ referrer }} suggested I reach out.</p>{% endif %}\n"
        + _FILLER * 6
        + "<p>Best regards,<br>Grace</p>\n</body></html>\n"
    ),
)


def make_rows(count: int) -> list[dict[str, object]]:
    """Distinct rows, a third without a referrer, some with characters that need HTML escaping."""
    return [
        {
            "first_name": f"Ada{i}",
            "company": f"Analytical Engines & Co {i}",
            "role": "backend <engineer>" if i % 7 == 0 else "backend engineer",
            "city": "London",
            "referrer": "" if i % 3 == 0 else f"Charles {i}",
        }
        for i in range(count)
    ]


def main() -> None:
    renderer = Renderer()
    started = time.perf_counter()
    compiled = renderer.compile(TYPICAL)
    compile_ms = (time.perf_counter() - started) * 1000

    rows = make_rows(ROWS)
    rates = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        results = renderer.render_batch(compiled, rows)
        rates.append(ROWS / (time.perf_counter() - started))
        if not all(isinstance(result, Rendered) for result in results):
            raise SystemExit("a row failed to render; the benchmark template or rows are wrong")
    rows_per_second = statistics.median(rates)

    body_chars = len(TYPICAL.html)
    report = {
        "area": "templates",
        "results": [
            {
                "name": "render_batch typical template",
                "value": round(rows_per_second),
                "unit": "rows/s",
                "goal": f">= {GOAL_ROWS_PER_SECOND} rows/s",
                "notes": (
                    f"median of {ROUNDS} rounds of {ROWS} rows on one core; subject with 1 placeholder,"
                    f" {body_chars}-char HTML body with 5 placeholders and 1 if, no text part;"
                    f" rounds: {', '.join(str(round(rate)) for rate in rates)};"
                    f" Python {platform.python_version()} on {platform.machine()}"
                ),
            },
            {
                "name": "compile typical template",
                "value": round(compile_ms, 2),
                "unit": "ms",
                "goal": "none (compiled once per template version, then cached)",
                "notes": "first compile in a fresh Renderer: parse, policy check, code generation",
            },
        ],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
