"""Tables as text: one renderer for every table the project prints or writes (markdown, which reads as
plain text in a terminal and renders on a dashboard or a repository page)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MISSING = "-"
"""How a table shows a value that does not exist (a split the run has not, a control not asked for)."""


def number(value: float | None, digits: int = 3) -> str:
    """A measure as a table shows it: ``0.957``; ``-`` where there is none.

    >>> number(0.95712), number(None)
    ('0.957', '-')
    """
    if value is None or value != value:  # None or NaN
        return MISSING
    return f"{value:.{digits}f}"


def with_interval(value: float | None, bounds: tuple[float, float] | None, digits: int = 3) -> str:
    """A measure with its 95% interval, as a table shows it: ``0.957 [0.944, 0.968]``; the value alone
    where it has no interval; ``-`` where there is none.

    >>> with_interval(0.95712, (0.94391, 0.96782)), with_interval(0.5, None), with_interval(None, None)
    ('0.957 [0.944, 0.968]', '0.500', '-')
    """
    if bounds is None or value is None or value != value:
        return number(value, digits)
    return f"{number(value, digits)} [{number(bounds[0], digits)}, {number(bounds[1], digits)}]"


def cell(text: Any) -> str:
    """Text that stays inside one cell of a markdown table."""
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, pad: bool = True) -> str:
    """A markdown table, its columns padded to line up in plain text (``pad=False``: compact, for files).

    >>> print(markdown_table(["direction", "IIA"], [["0>0", "0.957"]]))
    | direction | IIA   |
    |-----------|-------|
    | 0>0       | 0.957 |
    >>> print(markdown_table(["direction", "IIA"], [["0>0", "0.957"]], pad=False))
    | direction | IIA |
    |---|---|
    | 0>0 | 0.957 |
    """
    texts = [[cell(c) for c in header], *([cell(c) for c in row] for row in rows)]
    if not pad:
        lines = ["| " + " | ".join(r) + " |" for r in texts]
        lines.insert(1, "|" + "---|" * len(header))
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in texts) for i in range(len(header))]
    lines = ["| " + " | ".join(t.ljust(w) for t, w in zip(r, widths, strict=True)) + " |" for r in texts]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
