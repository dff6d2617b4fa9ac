"""The README's scan of the tiny counting language model, with its trained controls, and its two figures.

    python benchmarks/toy_lm_scan.py [--out FOLDER] [--figures docs]

The model is :func:`alignsearch.text.toy.build_toy_lm` (a 2-block GPT-2 trained to count, a few seconds),
the pairs ``toy.count_pair_rows(600, seed=0)``; the scan covers every site ``api.sites`` names (the
embedding, each block's residual stream, attention and MLP outputs and heads) x the last three positions
(33 cells, 8 units, 50 steps a cell) and trains the controls ``shuffled`` and ``untrained`` at the best
3 cells (the defaults). It prints the scan's lines, the best cells by selectivity and where the time went
(the controls' seconds against the cells'). ``--figures docs`` also writes ``docs/scan.png`` (IIA) and
``docs/scan-selectivity.png`` (selectivity) from the same cells. Run it with one torch thread
(``OMP_NUM_THREADS=1``), as the README's figures were.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

POSITIONS = ("last", -2, -3)
STEPS = 50
"""Training steps of each cell and control (the scan's default)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="keep the scan in this folder")
    parser.add_argument(
        "--figures", type=Path, default=None, help="write scan.png and scan-selectivity.png here"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="toy-lm-scan-") as tmp:
        run(args.out or Path(tmp), args.figures)


def run(out: Path, figures: Path | None) -> None:
    from alignsearch import api
    from alignsearch.text import toy

    lm = api.language_model(toy.build_toy_lm(out / "counter").folder)
    pairs = api.text_pairs(toy.count_pair_rows(600, seed=0), lm.tokenizer)
    sites = list(api.sites(lm))
    result = api.scan(
        lm, data=pairs, sites=sites, positions=list(POSITIONS), steps=STEPS, n_units=8, out_dir=out / "scan"
    )
    seconds = result.seconds
    cells = seconds["total"] - seconds["controls"]
    print(
        f"{len(result.cells)} cells, {seconds['total']:.1f} s: the trained controls {seconds['controls']:.1f} s,"
        f" {seconds['controls'] / cells:.0%} more than the cells"
    )
    if figures is not None:
        from alignsearch.report.plots import scan_heatmap

        figures.mkdir(parents=True, exist_ok=True)
        scan_heatmap(result, figures / "scan.png", STEPS, show="iia")
        shutil.copyfile(out / "scan" / "scan.png", figures / "scan-selectivity.png")
        print(f"written: {figures / 'scan.png'}, {figures / 'scan-selectivity.png'}")


if __name__ == "__main__":
    main()
