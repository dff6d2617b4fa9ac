"""Judging the claims: each claim's judge on the grids' rows, a judge that fails on what the folders hold
giving "could not be judged" rather than stopping the page, and the verdict in words."""

from __future__ import annotations

from alignsearch.findings.claims import CLAIMS, Finding
from alignsearch.findings.stats import Rows


def verdict(holds: bool | None) -> str:
    return {True: "supported", False: "not supported", None: "not measured"}[holds]


def judge_claims(grids: dict[str, Rows]) -> list[Finding]:
    """Each of :data:`~alignsearch.findings.claims.CLAIMS` judged on ``grids`` (grid name -> rows), in order."""
    judged = []
    for claim in CLAIMS:
        try:
            finding = claim.judge(grids)
        except (KeyError, ValueError, TypeError, ZeroDivisionError) as e:
            finding = Finding([], None, f"could not be judged: {type(e).__name__}: {e}")
        judged.append(finding)
    return judged
