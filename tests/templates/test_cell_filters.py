"""The ``number`` and ``date`` filters: CSV cells read, written as a locale writes them, and a cell
that cannot be read failing its own row, naming the column, the value and the filter."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from mailmerger_templates.errors import CellNotReadable
from mailmerger_templates.rendering import Renderer, TemplateInvalid, TemplateSource
from tests.templates.helpers import User, create_template, render_batch

NBSP = "\u202f"  # CLDR's French thousands separator


def _render(renderer: Renderer, expression: str, **fields: object) -> str:
    compiled = renderer.compile(TemplateSource(subject="s", html=f"{{{{ {expression} }}}}"))
    return renderer.render(compiled, fields).html


def _problems(renderer: Renderer, html: str) -> str:
    with pytest.raises(TemplateInvalid) as raised:
        renderer.compile(TemplateSource(subject="s", html=html))
    return "\n".join(problem.message for problem in raised.value.problems)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.mark.parametrize(
    ("cell", "expression", "expected"),
    [
        ("1234.5", "x | number", "1,234.5"),
        ("1,234.50", "x | number(2)", "1,234.50"),
        ("1 234,5", "x | number(2)", "1,234.50"),
        ("1.234,5", "x | number(2)", "1,234.50"),
        ("1'234.5", "x | number", "1,234.5"),
        ("1,234", "x | number", "1,234"),
        ("1.234", "x | number", "1,234"),
        ("1.234.567", "x | number", "1,234,567"),
        ("0.125", "x | number", "0.125"),
        ("0.125", "x | number(2)", "0.13"),
        ("2.5", "x | number(0)", "3"),
        ("-12", "x | number(2)", "-12.00"),
        ("  42 ", "x | number", "42"),
        (1234.5, "x | number(1)", "1,234.5"),
        (7, "x | number", "7"),
        ("1234.5", "x | number(2, 'de_DE')", "1.234,50"),
        ("1234.5", "x | number(2, locale='fr_FR')", f"1{NBSP}234,50"),
        ("1234567", "x | number(locale='de-DE')", "1.234.567"),
        ("1,234.5", "x | number(locale='en_US')", "1,234.5"),
    ],
)
def test_number_reads_cells_and_writes_them_for_the_locale(
    renderer: Renderer, cell: object, expression: str, expected: str
) -> None:
    """Each cell is read by the documented rule and written with the locale's grouping and decimal sign."""
    assert _render(renderer, expression, x=cell) == expected


@pytest.mark.parametrize(
    ("cell", "expression", "expected"),
    [
        ("2026-12-07", "d | date", "Dec 7, 2026"),
        ("2026-12-07", "d | date('long')", "December 7, 2026"),
        ("2026-12-07", "d | date('long', 'de_DE')", "7. Dezember 2026"),
        ("2026-12-07", "d | date('full', locale='fr_FR')", "lundi 7 décembre 2026"),
        ("2026-12-07", "d | date('d MMM yyyy', locale='de_DE')", "7 Dez. 2026"),
        ("2026-12-07T10:00", "d | date(\"d MMMM yyyy 'at' HH:mm\")", "7 December 2026 at 10:00"),
        ("2026-12-07 10:30:00+02:00", "d | date('HH:mm')", "10:30"),
        ("2026-12-07T10:00", "d | date('short')", "12/7/26"),
    ],
)
def test_date_reads_iso_cells_and_writes_them_for_the_locale(
    renderer: Renderer, cell: str, expression: str, expected: str
) -> None:
    """ISO dates and date-times are written in the style or CLDR pattern asked, in the locale's words."""
    assert _render(renderer, expression, d=cell) == expected


@pytest.mark.parametrize(
    ("expression", "cell", "expected"),
    [
        ("amount | number", "n/a", "the 'amount' cell 'n/a' is not a number (filter number)"),
        ("amount | number(2)", "12abc", "the 'amount' cell '12abc' is not a number (filter number)"),
        ("amount | number", "1,2,3", "the 'amount' cell '1,2,3' is not a number (filter number)"),
        ("amount | number", "1,23,456", "not a number"),
        ("amount | number", "1" * 19, "not a number"),
        ("amount | trim | number", "x", "the 'amount' cell 'x' is not a number"),
        ("amount | date", "07/12/2026", "the 'amount' cell '07/12/2026' is not a date (filter date)"),
        ("amount | date('long')", "tomorrow", "is not a date (filter date)"),
        ("(amount ~ 'x') | number", "1", "the value '1x' is not a number"),
    ],
)
def test_a_cell_that_cannot_be_read_fails_its_row_naming_it(
    renderer: Renderer, expression: str, cell: str, expected: str
) -> None:
    """An unreadable cell is never printed as is: the row fails, naming column, value and filter."""
    with pytest.raises(CellNotReadable) as raised:
        _render(renderer, expression, amount=cell)
    assert expected in str(raised.value)


def test_a_long_bad_cell_is_shortened_in_the_message(renderer: Renderer) -> None:
    """The message quotes at most 40 characters of the cell."""
    with pytest.raises(CellNotReadable) as raised:
        _render(renderer, "x | number", x="y" * 5000)
    assert len(str(raised.value)) < 200


def test_none_prints_as_nothing(renderer: Renderer) -> None:
    """A None reaching the filters (a default of none) prints nothing, like any None."""
    assert _render(renderer, "x | default(none) | number(2)") == ""
    assert _render(renderer, "x | default(none) | date") == ""


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("{{ a | number(locale='xx_YY') }}", "filter number: locale 'xx_YY' is unknown"),
        ("{{ a | date('long', 'klingon') }}", "filter date: locale 'klingon' is unknown"),
        ("{{ a | number(11) }}", "decimals must be a whole number from 0 to 10, not 11"),
        ("{{ a | number(-1) }}", "not -1"),
        ("{{ a | number('2') }}", "not '2'"),
        ("{{ a | number(b) }}", "the arguments of filter number must be fixed values"),
        ("{{ a | number(1, 'de_DE', 3) }}", "filter number takes decimals and locale"),
        ("{{ a | number(places=2) }}", "filter number takes decimals and locale"),
        ("{{ a | number(_cell='b') }}", "filter number takes decimals and locale"),
        ("{{ a | date('d J yyyy') }}", "'J' is not a date field"),
        ("{{ a | date('HH:mm z') }}", "'z' (a time zone) is not available"),
        ("{{ a | date('d' * 100) }}", "must be fixed values"),
        ("{{ a | date('" + "d" * 65 + "') }}", "longer than 64 characters"),
        ("{{ a | date(format='') }}", "write a style (short, medium, long, full)"),
    ],
)
def test_bad_arguments_are_template_errors_when_saved(renderer: Renderer, html: str, expected: str) -> None:
    """A bad locale, pattern or decimals is refused at compile time, naming the filter and the fix."""
    assert expected in _problems(renderer, html)


def test_unknown_filter_message_lists_the_new_filters(renderer: Renderer) -> None:
    """The list of filters a template is told about includes number and date."""
    message = _problems(renderer, "{{ a | money }}")
    assert "date" in message
    assert "number" in message


@pytest.mark.parametrize(
    "expression",
    [
        "x | number(10)",
        "x | number(10, 'de_DE')",
        "x | date('EEEE d MMMM yyyy GGGG QQQQ')",
        "x | date('full', 'fr_FR')",
    ],
)
@pytest.mark.parametrize(
    "cell", ["9" * 18 + "." + "9" * 30, "-" + "9" * 18, "2026-12-07T10:00", 1e17, 1.5e-7]
)
def test_output_stays_bounded(renderer: Renderer, expression: str, cell: object) -> None:
    """Whatever the cell, a number or date filter writes at most a short line."""
    try:
        output = _render(renderer, expression, x=cell)
    except CellNotReadable:
        return
    assert len(output) <= 120


async def test_render_batch_reports_a_bad_cell_as_that_rows_problem(
    client: httpx.AsyncClient, new_user: Callable[[], User], internal: dict[str, str]
) -> None:
    """In a campaign's batch, the row whose amount is 'n/a' fails with the detail; the others render."""
    user = new_user()
    created = await create_template(
        client, user, subject="Invoice {{ name }}", html="<p>{{ amount | number(2, 'de_DE') }} €</p>"
    )
    rows = [{"name": "Ada", "amount": "1234.5"}, {"name": "Bob", "amount": "n/a"}]
    response = await render_batch(client, internal, user, created["id"], 1, rows)
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert first["ok"] is True
    assert first["html"] == "<p>1.234,50 €</p>"
    assert second["ok"] is False
    assert second["error"] == "render_failed"
    assert "the 'amount' cell 'n/a' is not a number (filter number)" in second["detail"]


async def test_a_bad_locale_is_refused_when_the_template_is_validated(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """POST /v1/templates/validate answers 422 naming the filter and the locale to write instead."""
    user = new_user()
    response = await client.post(
        "/v1/templates/validate",
        json={"subject": "s", "html": "{{ a | number(2, locale='de_XX') }}"},
        headers=user.headers,
    )
    assert response.status_code == 422
    assert "filter number: locale 'de_XX' is unknown" in response.text
