"""The mailing report's CSV lines: RFC 4180 quoting, and no formula a
spreadsheet would run from a name or reference the sender typed."""

from __future__ import annotations

import csv
import io

from lre.server.services.custody.report import report_line


def test_cells_are_quoted_as_rfc_4180_reads_them() -> None:
    line = report_line(["0", 'lot "7", bâtiment B', "a\r\nb", "plain"])
    assert line.endswith("\r\n")
    assert next(csv.reader(io.StringIO(line, newline=""))) == [
        "0",
        'lot "7", bâtiment B',
        "a\r\nb",
        "plain",
    ]


def test_a_cell_that_would_be_a_formula_is_kept_as_text() -> None:
    cells = next(csv.reader(io.StringIO(report_line(["=HYPERLINK(1)", "+1", "-2", "@A1", "ok"]))))
    assert cells == ["'=HYPERLINK(1)", "'+1", "'-2", "'@A1", "ok"]
