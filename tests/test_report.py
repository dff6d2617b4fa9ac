"""The report: results.json files under a folder -> mean/std/count table per configuration."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from alignsearch import report


def write_run(folder: Path, seed: int, n_units: int, iia: float, test: float) -> None:
    run = folder / f"n_units={n_units},seed={seed}"
    run.mkdir(parents=True)
    results = {
        "config": {
            "task": "multiobject",
            "model": "gru",
            "seed": seed,
            "n_units": n_units,
            "variables": ["count"],
        },
        "steps": 10,
        "records": [
            {
                "source": f"gru/seed{seed}",
                "target": f"gru/seed{seed}",
                "direction": "0>0",
                "variable": "count",
                "trained": True,
                "iia": iia,
                "iia_heldout": None,
                "iia_test": test,
                "token_iia": 0.9,
                "iia_step0": 0.1,
            }
        ],
    }
    (run / "results.json").write_text(json.dumps(results))


def test_report_groups_over_seeds(tmp_path: Path, capsys) -> None:
    values = {(4, 0): 0.5, (4, 1): 0.7, (16, 0): 0.9, (16, 1): 0.95, (16, 2): 1.0}
    for (n_units, seed), iia in values.items():
        write_run(tmp_path, seed, n_units, iia, iia - 0.1)
    (tmp_path / "unfinished").mkdir()  # a run without results.json is not counted
    report.main([str(tmp_path)])

    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    by_units = {int(r["n_units"]): r for r in rows}
    assert set(by_units) == {4, 16}
    assert int(by_units[4]["n"]) == 2 and int(by_units[16]["n"]) == 3
    assert float(by_units[16]["iia_mean"]) == pytest.approx(statistics.fmean([0.9, 0.95, 1.0]))
    assert float(by_units[16]["iia_std"]) == pytest.approx(statistics.stdev([0.9, 0.95, 1.0]))
    assert float(by_units[4]["iia_test_mean"]) == pytest.approx(0.5)
    assert by_units[4]["iia_heldout_mean"] == ""  # no held-out counts: no number invented

    markdown = (tmp_path / "report.md").read_text()
    assert markdown == capsys.readouterr().out
    assert "Shared: task=multiobject, model=gru, variables=count" in markdown
    assert "| 16 | 0>0 | count | 3 | 0.950 ± 0.050 | - | 0.850 ± 0.050 |" in markdown


def test_report_bad_folder(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0] and "an existing folder" in err[0]
    with pytest.raises(SystemExit):
        report.main([str(tmp_path)])  # empty: nothing to report
    assert "no results.json under" in capsys.readouterr().err
