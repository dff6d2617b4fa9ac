"""The findings page: ``FINDINGS.md`` for the grid folders under a folder (each claim's table, verdict and
plots), and publishing it (``--publish docs/findings.md``: the page, its plots and the numbers behind it,
the old page's notes kept)."""

from __future__ import annotations

import datetime
import platform
from pathlib import Path

from alignsearch import atomic
from alignsearch.findings.claims import CLAIMS
from alignsearch.findings.grids import GRIDS, grid_rows
from alignsearch.findings.judging import judge_claims, verdict
from alignsearch.findings.record import RUN_RECORD
from alignsearch.tables import markdown_table

NOTES_MARKER = "<!-- notes written after the results: --publish keeps everything below this line -->"
"""Where a published page's generated text ends and its readers' notes begin."""


def findings(out: Path, size: str, seconds: float | None, command: str | None, sittings: int = 1) -> str:
    """The text of ``FINDINGS.md`` for the grid folders under ``out``. ``command`` ran the grids (in
    ``seconds`` of wall time over ``sittings``, an interrupted grid resuming in the next); None: no record
    of it (the folders were filled otherwise), and the header says so."""
    grids = {grid: grid_rows(out, grid) for grid in GRIDS}
    machine = (
        f"{platform.machine()} ({platform.system()}, Python {platform.python_version()}, {_cpus()} CPU cores)"
    )
    if command is None:
        produced = (
            f"Judged on {datetime.date.today().isoformat()}, {machine}, from the runs the grid folders held"
            " (`--skip-runs`; no record of the command that ran them)."
        )
    else:
        produced = f"Produced by `{command}` on {datetime.date.today().isoformat()}, {machine}" + (
            f", in {seconds / 60:.0f} min of wall time"
            + (f" over {sittings} sittings (it resumed where each stopped)." if sittings > 1 else ".")
            if seconds is not None
            else "."
        )
    lines = [
        "# Findings",
        "",
        produced,
        "Each number is a mean over seeds with its 95% interval over seeds (Student's t, clipped to the"
        " measure's range) and the number of seeds: `0.968 [0.947, 0.989] (n=5)`; one seed has no interval."
        " An interval covers the sampling of the seeds (and, through them, of the pairs), not the choices held"
        " fixed across them (how the task's sequences are sampled, the architecture, the settings). Verdicts"
        " compare the means with thresholds fixed in `alignsearch/findings/claims.py` before any run; a"
        " verdict that compares two conditions also states their difference over the seeds both have, with"
        " its 95% interval (Student's t over the per-seed differences) and the seeds paired, beside the"
        " threshold: shown, not judged; at"
        " `--size small` there are few seeds and short trainings, so a verdict is evidence at that size, not a"
        " replication.",
        "",
    ]
    judged = judge_claims(grids)
    verdicts = [
        [f"{i}. {claim.title}", claim.measured_as, verdict(finding.holds)]
        for i, (claim, finding) in enumerate(zip(CLAIMS, judged, strict=True), 1)
    ]
    lines.append(markdown_table(["claim", "measured as", "verdict"], verdicts, pad=False))
    for i, (claim, finding) in enumerate(zip(CLAIMS, judged, strict=True), 1):
        lines += ["", f"## {i}. {claim.title}", "", f"Measured as: {claim.measured_as} (grids: "
                  + ", ".join(f"`{g}` = `+experiment={GRIDS[g]}`" for g in claim.grids) + ").", ""]  # fmt: skip
        lines += finding.table + ["", f"**{verdict(finding.holds)}**: {finding.line}."]
        for grid in claim.grids:
            plots = sorted((out / grid / "plots").glob("*.png")) if (out / grid / "plots").is_dir() else []
            lines += [f"![{grid}: {p.stem}]({grid}/plots/{p.name})" for p in plots if p.stem != "iia_curves"]
    return "\n".join(lines) + "\n"


def publish(out: Path, page: Path) -> None:
    """Copy ``out``'s ``FINDINGS.md`` to ``page`` and its plots (``<grid>/plots/<name>.png``) next to it
    as ``<page stem>/<grid>/<name>.png``, the links rewritten to match; the old page's notes (from
    :data:`NOTES_MARKER` on) are kept below the new text. The numbers behind the page go beside the
    plots: each grid's ``report.csv`` (its table: a row per setting and direction, means and standard
    deviations over seeds) and :data:`RUN_RECORD`.

    A link ``![mas: mas_directions](mas/plots/mas_directions.png)`` on ``docs/findings.md`` becomes
    ``![mas: mas_directions](findings/mas/mas_directions.png)``."""
    text = (out / "FINDINGS.md").read_text()
    for grid in GRIDS:
        for plot in sorted((out / grid / "plots").glob("*.png")) if (out / grid / "plots").is_dir() else []:
            link = f"{page.stem}/{grid}/{plot.name}"
            if f"({grid}/plots/{plot.name})" in text:
                atomic.write_bytes(page.parent / link, plot.read_bytes())
                text = text.replace(f"({grid}/plots/{plot.name})", f"({link})")
        if (out / grid / "report.csv").is_file():
            atomic.write_bytes(
                page.parent / page.stem / grid / "report.csv", (out / grid / "report.csv").read_bytes()
            )
    if (out / RUN_RECORD).is_file():
        atomic.write_bytes(page.parent / page.stem / RUN_RECORD, (out / RUN_RECORD).read_bytes())
    old = page.read_text() if page.is_file() else ""
    if NOTES_MARKER in old:
        text += "\n" + old[old.index(NOTES_MARKER) :]
    elif old:
        print(f"replacing {page}: it had no notes marker, so none of its text is kept", flush=True)
    atomic.write_text(page, text)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
