"""The report: results.json files under a folder -> mean/std/count table per configuration."""

from __future__ import annotations

import csv
import errno
import json
import os
import statistics
from pathlib import Path
from typing import Any

import pytest

from alignsearch import atomic, report
from alignsearch.cli.report import main as report_command


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
    report_command([str(tmp_path)])

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
    # the mean over seeds, its 95% interval (Student's t, 2 degrees of freedom: 4.3026527 * sd / sqrt(3),
    # clipped to [0, 1] for a share) and n; the reference values worked out by hand (issue 31)
    assert (
        "| 16 | 0>0 | count | 3 | 0.950 [0.826, 1.000] (n=3) | - | 0.850 [0.726, 0.974] (n=3) |" in markdown
    )
    assert "Each cell: the mean over seeds with its 95% interval over seeds (Student's t" in markdown
    assert float(by_units[16]["iia_low"]) == pytest.approx(0.8257931, abs=1e-6)
    assert float(by_units[16]["iia_high"]) == 1.0  # 1.0742069, clipped: a mean of shares is at most 1
    assert float(by_units[16]["iia_test_low"]) == pytest.approx(0.7257931, abs=1e-6)
    assert float(by_units[16]["iia_test_high"]) == pytest.approx(0.9742069, abs=1e-6)
    assert (by_units[16]["iia_n"], by_units[4]["iia_heldout_n"], by_units[4]["iia_heldout_low"]) == (
        "3",
        "0",
        "",
    )


def test_runs_moved_aside_as_superseded_are_not_reported(tmp_path: Path) -> None:
    """A run folder reused for other models keeps the old outputs in ``superseded/<n>/``: never counted."""
    fake_run(tmp_path, "seed=0", {"model": "gru", "seed": 0}, [{"iia": 0.9}])
    fake_run(tmp_path / "seed=0" / "superseded", "1", {"model": "gru", "seed": 0}, [{"iia": 0.1}])
    report_command([str(tmp_path)])
    (row,) = csv.DictReader((tmp_path / "report.csv").open())
    assert (int(row["n"]), float(row["iia_mean"])) == (1, 0.9)


def test_a_run_repeated_in_another_folder_counts_once(tmp_path: Path) -> None:
    """The same sweep run twice (two timestamped folders): each seed counts once, the newer run's."""
    for seed, iias in ((0, (0.5, 0.9)), (1, (0.6, 0.8))):
        for folder, iia in zip(("first", "second"), iias, strict=True):
            run = fake_run(tmp_path / folder, f"seed={seed}", {"model": "gru", "seed": seed}, [{"iia": iia}])
            stamp = 1_000_000 + (10 if folder == "second" else 0)
            os.utime(run / "results.json", (stamp, stamp))
    fake_run(tmp_path / "second", "d_model", {"model": "gru", "seed": 0, "model.d_model": 64}, [{"iia": 0.1}])
    markdown, summary = report.report(tmp_path)
    by_width = {row.get("model.d_model"): row for row in summary}
    assert (by_width[None]["n"], by_width[None]["iia_mean"]) == (2, pytest.approx(0.85))  # 0.9 and 0.8
    assert (by_width[64]["n"], by_width[64]["iia_mean"]) == (1, pytest.approx(0.1))  # another width
    section = markdown.split("## Repeated runs\n", 1)[1]
    assert "2 run(s) have every setting and the seed of a newer run" in section
    assert (
        "| `first/seed=0` | `second/seed=0` |" in section
        and "| `first/seed=1` | `second/seed=1` |" in section
    )


def test_report_bad_folder(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        report_command([str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0] and "an existing folder" in err[0]
    with pytest.raises(SystemExit):
        report_command([str(tmp_path)])  # empty: nothing to report
    assert "no results.json under" in capsys.readouterr().err


def fake_run(
    folder: Path,
    name: str,
    config: dict[str, Any],
    records: list[dict[str, Any]],
    history: list[tuple[int, str, str, bool, float]] | None = None,
) -> Path:
    """A run folder with a hand-written results.json and, given a history, metrics.csv.

    ``history`` holds (step, split, direction, trained, iia) rows of the evaluation history.
    """
    run = folder / name
    run.mkdir(parents=True)
    base = {"variable": "count", "trained": True, "iia_heldout": None, "iia_test": None, "direction": "0>0"}
    results = {"config": config, "steps": 10, "records": [{**base, **r} for r in records]}
    (run / "results.json").write_text(json.dumps(results))
    if history is not None:
        lines = ["step,split,direction,source,target,variable,trained,iia,token_iia,cl_loss,cl_divergence"]
        for step, split, direction, trained, iia in history:
            lines.append(f"{step},{split},{direction},gru/a,gru/a,count,{trained},{iia},0.5,,")
        (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    return run


def shared_line(markdown: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith("Shared: "))


def run_report(*argv: str) -> int:
    """``main``'s exit status (0 when it returns)."""
    try:
        report_command(list(argv))
    except SystemExit as e:
        return int(e.code)
    return 0


def test_shared_lists_only_settings_with_one_value(tmp_path: Path, capsys) -> None:
    base = {"task": "multiobject", "model": "gru", "n_units": [4, 8], "seed": 0}
    for i, (variables, directions) in enumerate(
        [(["count"], ["0>1"]), (["full"], ["0>1"]), (["count"], ["0>1", "1>0"]), (["full"], ["0>1", "1>0"])]
    ):
        fake_run(
            tmp_path,
            f"job{i}",
            {**base, "variables": variables, "directions": directions},
            [{"variable": variables[0], "direction": "0>1", "iia": 0.1 * (i + 1)}],
        )
    assert run_report(str(tmp_path)) == 0
    markdown = (tmp_path / "report.md").read_text()
    # variables and directions differ between runs; the n_units list and the seed are the same in all
    assert shared_line(markdown) == "Shared: task=multiobject, model=gru, n_units=4,8, seed=0"
    assert "| directions | direction | variable | n | IIA val | IIA heldout | IIA test |" in markdown
    assert "| 0>1,1>0 | 0>1 | full | 1 | 0.400 | - | - |" in markdown  # one run: its value, no spread
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [(r["directions"], r["variable"]) for r in rows] == [
        ("0>1", "count"),
        ("0>1", "full"),
        ("0>1,1>0", "count"),
        ("0>1,1>0", "full"),
    ]
    capsys.readouterr()


def test_shared_is_computed_not_taken_from_the_first_run(tmp_path: Path) -> None:
    """A setting implied by a column (site by layer) varies: it is not shared either."""
    for layer, site in ((0, "h0"), (1, "h1")):
        fake_run(tmp_path, f"layer={layer}", {"model": "gru", "layer": layer, "site": site}, [{"iia": 0.5}])
    markdown, _ = report.report(tmp_path)
    assert shared_line(markdown) == "Shared: model=gru"
    assert "| layer | direction | variable |" in markdown


BAD_RESULTS = {
    "truncated": ('{"config": {"seed": 1}, "records": [', "not valid JSON (Expecting value: line 1 column"),
    "empty": ("", "empty file"),
    "object": ("{}", "records is missing"),
    "list": ("[1, 2]", "the file is a list: expected a JSON object"),
    "no_records": ('{"config": {}, "records": []}', "records is empty"),
    "no_config": ('{"records": [{"variable": "count", "iia": 0.5}]}', "config is missing"),
    "missing_keys": ('{"config": {}, "records": [{"direction": "0>0"}]}', "records[0] lacks variable, iia"),
    "text_iia": (
        '{"config": {}, "records": [{"variable": "v", "iia": "high"}]}',
        "records[0].iia is 'high': expected a number",
    ),
    "list_variable": (
        '{"config": {}, "records": [{"variable": ["a"], "iia": 0.5}]}',
        "records[0].variable is ['a']: expected a string",
    ),
    "bad_direction": (
        '{"config": {}, "records": [{"variable": "v", "iia": 0.5, "direction": "up"}]}',
        "records[0].direction is 'up': expected source>target",
    ),
}


def test_unreadable_runs_are_listed_and_the_rest_reported(tmp_path: Path, capsys) -> None:
    good = fake_run(tmp_path, "n_units=4", {"model": "gru", "n_units": 4}, [{"iia": 0.8}])
    fake_run(tmp_path, "n_units=8", {"model": "gru", "n_units": 8}, [{"iia": 0.6}])
    (good / "similarity.json").write_text('{"measures": ')
    (good / "metrics.csv").write_text("step,iia\n0,0.5\n")
    for name, (text, _) in BAD_RESULTS.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(text)

    assert run_report(str(tmp_path)) == 0
    out, err = capsys.readouterr()
    expected = {f"{tmp_path / name / 'results.json'}: {reason}" for name, (_, reason) in BAD_RESULTS.items()}
    expected |= {
        f"{good / 'similarity.json'}: not valid JSON (Expecting value: line 1 column 14 (char 13))",
        f"{good / 'metrics.csv'}: lacks column(s) split",
    }
    lines = err.strip().splitlines()
    assert len(lines) == len(expected)
    for prefix in expected:  # each unreadable file once, on its own line, with its reason
        assert sum(line.startswith(prefix) for line in lines) == 1, prefix
    markdown = (tmp_path / "report.md").read_text()
    assert out == markdown
    section = markdown.split("## Unreadable runs\n", 1)[1]
    assert f"{len(expected)} file(s) could not be read" in section
    for prefix in expected:
        path, reason = prefix.split(": ", 1)
        assert f"- `{path}`: {reason}" in section
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [(r["n_units"], float(r["iia_mean"])) for r in rows] == [("4", 0.8), ("8", 0.6)]
    assert "cka_linear_mean" not in rows[0]  # the unreadable similarity.json adds nothing


MISSING_RECORDS = "a finished run's results have a config and records"


def test_no_readable_run_exits_2_with_one_error_line(tmp_path: Path, capsys) -> None:
    """Only unreadable results: bad input, the status of every other bad input."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text("{}")
    assert run_report(str(tmp_path)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{tmp_path / 'a' / 'results.json'}: records is missing: {MISSING_RECORDS}",
        f"{tmp_path / 'b' / 'results.json'}: records is missing: {MISSING_RECORDS}",
        f"error: no readable results.json under {tmp_path} (2 unreadable)",
    ]
    assert not (tmp_path / "report.md").exists()


def write_summary(sweep: Path, rows: list[tuple[str, str, str, str]]) -> None:
    """A sweep's summary.csv: (job, status, overrides, error) rows in the order the jobs ended."""
    with (sweep / "summary.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["job", "status", "overrides", "iia", "error"])
        for job, status, overrides, error in rows:
            writer.writerow([job, status, overrides, "" if error else "0.5", error])


def test_failed_jobs_are_listed(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    fake_run(sweep, "0", {"model": "gru", "seed": 0}, [{"iia": 0.9}])
    fake_run(sweep, "1", {"model": "gru", "seed": 1}, [{"iia": 0.7}])
    write_summary(
        sweep,
        [
            ("0", "done", "seed=0", ""),
            ("1", "failed", "seed=1", "RuntimeError: out of memory"),
            ("2", "failed", "seed=2", "ValueError: first try"),
            ("3", "failed", "seed=3", "KeyError: 'x|y'"),
            ("1", "done", "seed=1", ""),  # the rerun succeeded: no longer failed
            ("2", "failed", "seed=2", "ValueError: second try"),
            ("4", "interrupted", "seed=4", "interrupted by SIGTERM at step 20: checkpoint saved in c"),
        ],
    )
    assert run_report(str(tmp_path)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    markdown = (tmp_path / "report.md").read_text()
    assert out == markdown
    section = markdown.split("## Failed jobs\n", 1)[1].split("\n## ")[0]
    assert "3 failed job(s)" in section
    assert f"| `{sweep / '2'}` | seed=2 | ValueError: second try |" in section
    assert f"| `{sweep / '3'}` | seed=3 | KeyError: 'x\\|y' |" in section
    assert (
        f"| `{sweep / '4'}` | seed=4 | interrupted by SIGTERM at step 20: checkpoint saved in c |" in section
    )
    assert "first try" not in section and "seed=1" not in section
    assert "## Unreadable runs" not in markdown


def test_all_jobs_failed_exits_1(tmp_path: Path, capsys) -> None:
    write_summary(tmp_path, [("0", "failed", "seed=0", "RuntimeError: boom")])
    assert run_report(str(tmp_path)) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: no readable results.json under {tmp_path} (1 failed job(s))"
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "runs"
    fake_run(folder, "seed=0", {"seed": 0}, [{"iia": 0.5}])
    folder.chmod(0o555)
    try:
        assert run_report(str(folder)) == 2
    finally:
        folder.chmod(0o755)
    assert capsys.readouterr().err.splitlines() == [
        f"error: cannot write the report to {folder}: permission denied (choose another folder with --out)"
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["seed=0"]


def test_permission_denied_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    """What a read-only folder gives, also where the tests run as root (who may write anywhere)."""
    fake_run(tmp_path, "seed=0", {"seed": 0}, [{"iia": 0.5}])
    out = tmp_path / "out"

    def denied(path: Path | str, text: str) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(atomic, "write_text", denied)
    assert run_report(str(tmp_path), "--out", str(out)) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: cannot write the report to {out}: permission denied"
    ]


def test_out_under_a_file(tmp_path: Path, capsys) -> None:
    """Unwritable for every user, root included."""
    fake_run(tmp_path, "seed=0", {"seed": 0}, [{"iia": 0.5}])
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder\n")
    for out in (blocker, blocker / "report"):
        assert run_report(str(tmp_path), "--out", str(out)) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"error: cannot write the report to {out}: {blocker} is a file, not a folder"
        ]
    assert blocker.read_text() == "a file, not a folder\n"


def test_iia_curves_for_a_seed_only_sweep(tmp_path: Path, capsys) -> None:
    config = {"task": "multiobject", "model": "gru", "variables": ["count"]}
    for seed, curve in ((2, (0.1, 0.5, 0.9)), (10, (0.2, 0.4, 0.6))):
        history = [(10 * i, "val", "0>0", True, iia) for i, iia in enumerate(curve)]
        history += [(10 * i, "heldout", "0>0", True, 0.0) for i in range(3)]  # another split: not drawn
        fake_run(tmp_path, f"seed={seed}", {**config, "seed": seed}, [{"iia": curve[-1]}], history)
    fake_run(tmp_path, "seed=3", {**config, "seed": 3}, [{"iia": 0.3}])  # no metrics.csv: no curve
    assert run_report(str(tmp_path)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "![iia_curves](plots/iia_curves.png)" in out
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["iia_curves.png"]
    assert (tmp_path / "plots" / "iia_curves.png").stat().st_size > 0

    collected = report.collect(tmp_path)
    lines = report.curve_lines(collected.curves, report.table_keys(collected.rows, ["seed"]))
    assert list(lines) == ["seed=2", "seed=10"]  # numbers in numeric order
    assert lines == {"seed=2": ([0, 10, 20], [0.1, 0.5, 0.9]), "seed=10": ([0, 10, 20], [0.2, 0.4, 0.6])}


def test_iia_curves_of_a_repeated_run_are_the_newer_runs(tmp_path: Path) -> None:
    history = [(0, "val", "0>0", True, 0.25), (5, "val", "0>0", True, 0.75)]
    older = fake_run(tmp_path / "a", "run", {"seed": 0}, [{"iia": 0.75}], history)
    fake_run(tmp_path / "b", "run", {"seed": 0}, [{"iia": 0.75}], history)
    os.utime(older / "results.json", (1_000_000, 1_000_000))
    collected = report.collect(tmp_path)
    assert report.table_keys(collected.rows, collected.config_keys) == []
    lines = report.curve_lines(collected.curves, [])
    assert lines == {"b/run": ([0, 5], [0.25, 0.75])}
    assert collected.repeated == [("a/run", "b/run")]


def test_no_metrics_csv_no_curves(tmp_path: Path) -> None:
    fake_run(tmp_path, "seed=0", {"seed": 0}, [{"iia": 0.5}])
    markdown, _ = report.report(tmp_path)
    assert "No IIA learning curves: no run has a readable metrics.csv." in markdown
    assert "![" not in markdown and not (tmp_path / "plots").exists()


def test_iia_curves_one_line_per_trained_track(tmp_path: Path) -> None:
    history = [
        (0, "val", "0>1", True, 0.2),
        (0, "val", "1>0", True, 0.3),
        (0, "val", "0>0", False, 0.9),  # not trained: not drawn
        (5, "val", "0>1", True, 0.6),
        (5, "val", "1>0", True, 0.7),
    ]
    for n_units in (4, 8):
        fake_run(tmp_path, f"n_units={n_units}", {"n_units": n_units}, [{"iia": 0.5}], history)
    collected = report.collect(tmp_path)
    lines = report.curve_lines(collected.curves, report.table_keys(collected.rows, ["n_units"]))
    assert lines == {
        f"n_units={n}, direction={d}": ([0, 5], [a, b])
        for n in (4, 8)
        for d, a, b in (("0>1", 0.2, 0.6), ("1>0", 0.3, 0.7))
    }
    markdown, _ = report.report(tmp_path)
    assert "![iia_curves](plots/iia_curves.png)" in markdown


def test_a_single_run_shows_its_value_without_a_spread(tmp_path: Path) -> None:
    fake_run(tmp_path, "n_units=4", {"n_units": 4, "seed": 0}, [{"iia": 0.957, "iia_test": 0.9}])
    for seed, iia in ((0, 0.9), (1, 0.9)):  # two runs of one value: a real zero spread
        fake_run(tmp_path, f"n_units=8,seed={seed}", {"n_units": 8, "seed": seed}, [{"iia": iia}])
    markdown, summary = report.report(tmp_path)
    assert "| 4 | 0>0 | count | 1 | 0.957 | - | 0.900 |" in markdown  # no pairs recorded: no interval
    assert "| 8 | 0>0 | count | 2 | 0.900 [0.900, 0.900] (n=2) | - | - |" in markdown
    rows = {row["n_units"]: row for row in csv.DictReader((tmp_path / "report.csv").open())}
    assert (rows["4"]["iia_mean"], rows["4"]["iia_std"]) == ("0.957", "")  # no standard deviation of one
    assert (rows["4"]["iia_low"], rows["4"]["iia_high"], rows["4"]["iia_n"]) == ("", "", "1")
    assert float(rows["8"]["iia_std"]) == 0.0


def mas_run(folder: Path, partner: str, seed: int, cka: float, rsa: float) -> None:
    """A two-model run: its four directions, each model's trial accuracy and the pair's similarity."""
    records = [{"direction": d, "iia": 0.5 + 0.1 * i} for i, d in enumerate(("0>0", "0>1", "1>0", "1>1"))]
    config = {"model": "gru", "partner_model": partner, "seed": seed}
    run = fake_run(folder, f"partner={partner},seed={seed}", config, records)
    results = json.loads((run / "results.json").read_text())
    (run / "results.json").write_text(json.dumps({**results, "task_accuracy": [0.99, 0.8]}))
    (run / "similarity.json").write_text(
        json.dumps({"measures": {"cka_linear": cka, "rsa_cos_spearman": rsa}})
    )


def test_two_model_runs_give_the_pair_similarity_once_and_name_the_target_accuracy(tmp_path: Path) -> None:
    for seed, (cka, rsa) in enumerate(((0.8, 0.6), (0.6, 0.4))):
        mas_run(tmp_path, "lstm", seed, cka, rsa)
    mas_run(tmp_path, "transformer", 0, 0.3, 0.2)
    markdown, _ = report.report(tmp_path)
    main, pairs = markdown.split("Similarity of the two models", 1)
    assert "cka" not in main and "rsa" not in main  # not repeated on each direction's row
    assert (
        "| partner_model | direction | variable | n | IIA val | IIA heldout | IIA test | target trial acc |"
        in main
    )
    assert (
        "| lstm | 0>1 | count | 2 | 0.600 [0.600, 0.600] (n=2) | - | - | 0.800 [0.800, 0.800] (n=2) |" in main
    )
    assert (
        "| lstm | 1>0 | count | 2 | 0.700 [0.700, 0.700] (n=2) | - | - | 0.990 [0.990, 0.990] (n=2) |" in main
    )
    table = [line for line in pairs.splitlines() if line.startswith("|")]
    assert table == [
        "| partner_model | n | cka_linear | rsa_cos_spearman |",
        "|---|---|---|---|",
        # t with 1 degree of freedom: 12.7062047 * 0.1 either side, clipped to CKA's [0, 1], RSA's [-1, 1]
        "| lstm | 2 | 0.700 [0.000, 1.000] (n=2) | 0.500 [-0.771, 1.000] (n=2) |",
        "| transformer | 1 | 0.300 | 0.200 |",
    ]
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert {r["task_acc_mean"] for r in rows if r["direction"] == "1>0"} == {"0.99"}
    assert {r["cka_linear_mean"] for r in rows if r["partner_model"] == "transformer"} == {"0.3"}


MAS_DIRECTIONS = ("0>0", "0>1", "1>0", "1>1")


def mas_sweep_job(sweep: Path, seed: int, iias: dict[str, float], partner_seed: int | None = None) -> Path:
    """A job of ``run_alignment.py model=gru alignment=mas -m seed=...`` (``partner.seed=partner_seed``
    where given) as the run writes it: ``<sweep>/<overrides>/results.json`` through :class:`RunResults`,
    with a MAS run's flat config, the partner seed as :class:`RunSettings` gives it, one record per
    direction (IIA ``iias[direction]``) and each model's task accuracy."""
    from alignsearch.search.records import AlignmentRecord
    from alignsearch.search.results import RunResults
    from alignsearch.settings import RunSettings

    run = RunSettings.parse({"seed": seed, "layer": 0, "n_units": 16, "partner": {"seed": partner_seed}})
    overrides = f"seed={seed}" if partner_seed is None else f"partner.seed={partner_seed},seed={seed}"
    config = {
        "task": "multiobject", "model": "gru", "alignment": "mas", "seed": seed, "layer": 0,
        "site": "layer.0", "n_units": 16, "variables": ["count"], "causal_model": "updown",
        "stepwise": False, "lr": 0.01, "batch_size": 64, "max_steps": 300, "function": "Rotation",
        "layout": "FixedLayout", "snapshot": None, "cl_weight": 0.0, "cl_space": "full",
        "partner_model": "gru", "partner_task": "multiobject", "partner_seed": run.partner_seed(),
        "partner_site": "layer.0", "partner_causal_model": "updown", "partner_variables": ["count"],
        "directions": list(MAS_DIRECTIONS), "cl_directions": [], "cl_eps": None, "model.d_model": 32,
        "partner_model.d_model": 32,
    }  # fmt: skip
    names = (f"multiobject/gru/seed{seed}", f"multiobject/gru/seed{run.partner_seed()}")
    records = [
        AlignmentRecord.from_json(
            {
                "source": names[int(d[0])],
                "target": names[int(d[2])],
                "direction": d,
                "variable": "count",
                "trained": True,
                "loss": "behaviour",
                "iia": iias[d],
                "iia_heldout": None,
                "iia_test": iias[d] - 0.05,
                "token_iia": 0.99,
                "iia_step0": 0.1,
            }
        )
        for d in MAS_DIRECTIONS
    ]
    folder = sweep / overrides
    results = RunResults(config, records, steps=300, best_step=300, task_accuracy=[0.99, 0.98])
    atomic.write_json(folder / "results.json", results.to_json())
    return folder


MAS_IIAS = {
    1: {"0>0": 0.9, "0>1": 0.6, "1>0": 0.5, "1>1": 0.95},
    2: {"0>0": 0.8, "0>1": 0.7, "1>0": 0.75, "1>1": 0.85},
    3: {"0>0": 1.0, "0>1": 0.8, "1>0": 0.7, "1>1": 0.9},
}
"""The IIA of each direction of a MAS sweep over seeds 1, 2 and 3."""


@pytest.fixture
def drawn_figures(monkeypatch) -> dict[str, list[str]]:
    """{plot file name: the title of each panel drawn} of every plot the report writes."""
    from alignsearch.report import plots

    drawn: dict[str, list[str]] = {}
    save = plots._save

    def record(fig, path: Path) -> Path:
        drawn[path.name] = [ax.get_title() for ax in fig.axes if ax.axison]
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", record)
    return drawn


def test_a_mas_sweep_over_seeds_reports_over_seeds(tmp_path: Path, drawn_figures) -> None:
    """Issue 30: ``-m seed=1,2,3`` of MAS pairs each seed with the partner seed + 1; that partner seed is
    part of the seed, so each direction is one row over the three seeds and the direction matrix one panel
    (it was one row and one panel per partner seed, each n = 1)."""
    for seed, iias in MAS_IIAS.items():
        mas_sweep_job(tmp_path, seed, iias)
    markdown, summary = report.report(tmp_path)

    assert [(row["direction"], row["n"]) for row in summary] == [(d, 3) for d in MAS_DIRECTIONS]
    assert "partner_seed" not in summary[0]  # not a column: it follows from the seed
    assert "partner_seed=seed + 1" in shared_line(markdown)
    rows = {row["direction"]: row for row in csv.DictReader((tmp_path / "report.csv").open())}
    for direction in MAS_DIRECTIONS:
        iias = [MAS_IIAS[seed][direction] for seed in (1, 2, 3)]
        assert float(rows[direction]["n"]) == 3
        assert float(rows[direction]["iia_mean"]) == statistics.fmean(iias)
        assert float(rows[direction]["iia_std"]) == statistics.stdev(iias)
    three = "| 0>1 | count | 3 | 0.700 [0.452, 0.948] (n=3) | - | 0.650 [0.402, 0.898] (n=3) | 0.980 [0.980, 0.980] (n=3) |"
    assert three in markdown
    three = "| 1>0 | count | 3 | 0.650 [0.321, 0.979] (n=3) | - | 0.600 [0.271, 0.929] (n=3) | 0.990 [0.990, 0.990] (n=3) |"
    assert three in markdown
    assert drawn_figures["mas_directions.png"] == ["variable=count"]  # one panel, over the seeds
    assert "![mas_directions](plots/mas_directions.png)" in markdown


def test_a_partner_seed_set_otherwise_is_a_setting(tmp_path: Path, drawn_figures) -> None:
    """A partner seed that is not the one derived from the seed splits as any setting: ``partner.seed=7,8``
    swept with ``seed=1,2,3`` gives a row (and a panel) per partner seed over three seeds each; a fixed
    partner (``partner.seed=2``, seed 1's derived one by chance) is one value over the three seeds."""
    swept = tmp_path / "swept"
    for partner in (7, 8):
        for seed, iias in MAS_IIAS.items():
            mas_sweep_job(swept, seed, {d: iia - 0.01 * (partner - 7) for d, iia in iias.items()}, partner)
    markdown, summary = report.report(swept)
    assert [(row["partner_seed"], row["direction"], row["n"]) for row in summary] == [
        (partner, d, 3) for partner in (7, 8) for d in MAS_DIRECTIONS
    ]
    assert "| 8 | 0>1 | count | 3 | 0.690 [0.442, 0.938] (n=3) |" in markdown
    assert drawn_figures["mas_directions.png"] == [
        "partner_seed=7, variable=count",
        "partner_seed=8, variable=count",
    ]

    fixed = tmp_path / "fixed"
    for seed, iias in MAS_IIAS.items():
        mas_sweep_job(fixed, seed, iias, partner_seed=2)
    markdown, summary = report.report(fixed)
    assert [(row["direction"], row["n"]) for row in summary] == [(d, 3) for d in MAS_DIRECTIONS]
    assert "partner_seed=2" in shared_line(markdown)
    assert drawn_figures["mas_directions.png"] == ["variable=count"]


# -- intervals (issue 31) ---------------------------------------------------------------------------------------
@pytest.fixture
def error_bars(monkeypatch) -> dict[str, list[dict[str, Any]]]:
    """{plot file name: each error-bar line drawn, as {label, points: [(x, y)], bars: [(x, low, high)]}}:
    the data of the matplotlib objects themselves, read before the figure is saved."""
    from alignsearch.report import plots

    drawn: dict[str, list[dict[str, Any]]] = {}
    save = plots._save

    def record(fig, path: Path) -> Path:
        lines = []
        for ax in fig.axes:
            for container in ax.containers:
                data_line, _, (bar_lines, *_) = container.lines
                bars = [(float(s[0][0]), float(s[0][1]), float(s[1][1])) for s in bar_lines.get_segments()]
                points = list(zip(*(map(float, v) for v in data_line.get_data()), strict=True))
                lines.append({"label": container.get_label(), "points": points, "bars": bars})
        drawn[path.name] = lines
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", record)
    return drawn


SCHEMA_5_RECORD = {"n_pairs": 50, "iia_low": 0.786398, "iia_high": 0.956524}
"""A record's pairs and Wilson interval as schema 5 writes them: 45 of 50 pairs right (IIA 0.9)."""


def test_a_single_run_shows_its_interval_over_pairs(tmp_path: Path) -> None:
    fake_run(tmp_path, "n_units=4", {"n_units": 4, "seed": 0}, [{"iia": 0.9, **SCHEMA_5_RECORD}])
    fake_run(tmp_path, "n_units=8", {"n_units": 8, "seed": 0}, [{"iia": 0.8}])  # schema 4: no pairs
    markdown, _ = report.report(tmp_path)
    assert "| 4 | 0>0 | count | 1 | 0.900 [0.786, 0.957] (50 pairs) | - | - |" in markdown
    assert "| 8 | 0>0 | count | 1 | 0.800 | - | - |" in markdown
    rows = {row["n_units"]: row for row in csv.DictReader((tmp_path / "report.csv").open())}
    assert (rows["4"]["iia_low"], rows["4"]["iia_high"], rows["4"]["iia_pairs"]) == (
        "0.786398",
        "0.956524",
        "50",
    )
    assert (rows["8"]["iia_low"], rows["8"]["iia_pairs"]) == ("", "")


def test_the_plots_error_bars_are_the_intervals(tmp_path: Path, error_bars) -> None:
    """Five seeds at n_units=4: the bar is the t interval (0.9403676, 0.9796324) around 0.96, worked out
    by hand; one run at n_units=8: its Wilson interval over its 50 pairs; one at 16 with none: no length."""
    for seed, iia in enumerate([0.95, 0.97, 0.96, 0.98, 0.94]):
        fake_run(tmp_path, f"n_units=4,seed={seed}", {"n_units": 4, "seed": seed}, [{"iia": iia}])
    fake_run(tmp_path, "n_units=8", {"n_units": 8, "seed": 0}, [{"iia": 0.9, **SCHEMA_5_RECORD}])
    fake_run(tmp_path, "n_units=16", {"n_units": 16, "seed": 0}, [{"iia": 0.5}])
    report.report(tmp_path)
    (line,) = error_bars["iia_by_n_units.png"]
    assert [x for x, _ in line["points"]] == [4, 8, 16]
    assert [y for _, y in line["points"]] == pytest.approx([0.96, 0.9, 0.5])
    bars = [(4, 0.9403676, 0.9796324), (8, 0.786398, 0.956524), (16, 0.5, 0.5)]
    assert flat(line["bars"]) == pytest.approx(flat(bars), abs=1e-6)


def test_the_training_plot_bars_iia_and_task_accuracy(tmp_path: Path, error_bars) -> None:
    for seed, (iia, acc) in enumerate([(0.6, 0.9), (0.7, 0.95), (0.8, 1.0)]):
        for step in (100, 200):
            config = {"snapshot": step, "seed": seed}
            run = fake_run(tmp_path, f"snapshot={step},seed={seed}", config, [{"iia": iia}])
            results = json.loads((run / "results.json").read_text())
            (run / "results.json").write_text(json.dumps({**results, "task_accuracy": [acc]}))
    report.report(tmp_path)
    iia, accuracy = error_bars["iia_over_training.png"]
    # three seeds, t with 2 degrees of freedom: 4.3026527 * 0.1 / sqrt(3) = 0.2484138 either side of 0.7;
    # 4.3026527 * 0.05 / sqrt(3) = 0.1242069 either side of 0.95, clipped at 1
    assert iia["label"] == "IIA: count" and accuracy["label"] == "target trial acc: count"
    assert flat(iia["points"]) == pytest.approx([100, 0.7, 200, 0.7])
    assert flat(iia["bars"]) == pytest.approx(
        [100, 0.4515862, 0.9484138, 200, 0.4515862, 0.9484138], abs=1e-6
    )
    assert flat(accuracy["bars"]) == pytest.approx([100, 0.8257931, 1.0, 200, 0.8257931, 1.0], abs=1e-6)


def flat(items: list[tuple[float, ...]]) -> list[float]:
    return [value for item in items for value in item]


def test_the_direction_matrix_writes_each_cells_interval(tmp_path: Path, monkeypatch) -> None:
    from alignsearch.report import plots

    texts: list[str] = []
    save = plots._save

    def record(fig, path: Path) -> Path:
        texts.extend(t.get_text() for ax in fig.axes for t in ax.texts)
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", record)
    for seed, iias in MAS_IIAS.items():
        mas_sweep_job(tmp_path, seed, iias)
    report.report(tmp_path)
    # 0>1 over the three seeds: 0.6, 0.7, 0.8 -> 0.7 -+ 4.3026527 * 0.1 / sqrt(3) = (0.4515862, 0.9484138)
    assert texts == ["0.90\n[0.65, 1.00]", "0.70\n[0.45, 0.95]", "0.65\n[0.32, 0.98]", "0.90\n[0.78, 1.00]"]


def compared_run(
    folder: Path, model: str, n_units: int, seed: int, iia: float, hits: str | None = None, pairs: str = "p0"
) -> None:
    """A run of ``model`` at ``n_units`` and ``seed`` as the run writes it (:class:`RunResults`), its
    validation IIA ``iia`` and its test IIA 0.05 below; the LSTM is 48 wide, the GRU 32."""
    from alignsearch.search.records import AlignmentRecord
    from alignsearch.search.results import RunResults

    config = {"task": "multiobject", "model": model, "seed": seed, "n_units": n_units, "variables": ["count"],
              "model.d_model": 32 if model == "gru" else 48}  # fmt: skip
    record = AlignmentRecord.from_json(
        {
            "source": f"{model}/seed{seed}",
            "target": f"{model}/seed{seed}",
            "direction": "0>0",
            "variable": "count",
            "trained": True,
            "iia": iia,
            "iia_heldout": None,
            "iia_test": iia - 0.05,
            "token_iia": 0.99,
            "iia_step0": 0.1,
            **({"pair_hits": hits, "pairs_sha256": pairs} if hits else {}),
        }  # fmt: skip
    )
    folder = folder / f"model={model},n_units={n_units},seed={seed}"
    atomic.write_json(folder / "results.json", RunResults(config, [record], steps=10).to_json())


def test_compare_pairs_two_conditions_by_seed(tmp_path: Path, capsys) -> None:
    """Issue 31: ``--compare model=gru,lstm`` pairs each GRU run with the LSTM run of the same seed and
    n_units. At 16 units the differences over seeds 0-2 are 0.31, 0.22, 0.40: mean 0.31, sd 0.09, so the
    interval is 0.31 -+ 4.3026527 * 0.09 / sqrt(3) = (0.0864276, 0.5335724) and the paired t-test's
    t = 5.9659528 with 2 degrees of freedom gives p = 0.0269645; at 4 units 0.2 and -0.1: 0.05 -+
    12.7062047 * 0.2121320 / sqrt(2), clipped to [-1, 1], p = 0.7951672 (worked out by integrating the t
    density at 30 digits). The LSTM's seed 3 has no GRU run: counted, not paired."""
    runs = {(16, 0): (0.95, 0.64), (16, 1): (0.90, 0.68), (16, 2): (0.99, 0.59), (4, 0): (0.8, 0.6),
            (4, 1): (0.7, 0.8)}  # fmt: skip
    for (n_units, seed), (gru, lstm) in runs.items():
        compared_run(tmp_path, "gru", n_units, seed, gru)
        compared_run(tmp_path, "lstm", n_units, seed, lstm)
    compared_run(tmp_path, "lstm", 16, 3, 0.5)
    assert report_command([str(tmp_path), "--compare", "model=gru,lstm"]) == 0
    markdown = (tmp_path / "report.md").read_text()
    assert markdown == capsys.readouterr().out
    section = markdown.split("## Comparison: model=gru minus model=lstm\n", 1)[1]
    assert (
        "Paired by seed, every other setting alike: 5 run(s) of model=gru with one of model=lstm; 1 run(s) of"
        " model=lstm without a partner (`model=lstm,n_units=16,seed=3`)." in section
    )
    assert "Settings that change with model, so not paired on: model.d_model (32 against 48)." in section
    assert "| n_units | direction | variable | n | IIA val | IIA test |" in section  # no held-out pairs
    assert (
        "| 4 | 0>0 | count | 2 | 0.050 [-1.000, 1.000] p=0.795 (n=2) | 0.050 [-1.000, 1.000] p=0.795 (n=2) |"
        in section
    )
    assert "| 16 | 0>0 | count | 3 | 0.310 [0.086, 0.534] p=0.027 (n=3) |" in section
    assert "the two-sided p-value of the paired t-test" in section
    rows = {row["n_units"]: row for row in csv.DictReader((tmp_path / "comparison.csv").open())}
    sixteen = rows["16"]
    assert float(sixteen["iia_diff"]) == pytest.approx(0.31, abs=1e-9)
    assert (float(sixteen["iia_low"]), float(sixteen["iia_high"])) == pytest.approx(
        (0.0864276, 0.5335724), abs=1e-6
    )
    assert float(sixteen["iia_p"]) == pytest.approx(0.0269645, rel=1e-5)
    assert (sixteen["iia_n"], sixteen["n"]) == (
        "3",
        "3",
    ) and "iia_heldout_diff" not in sixteen  # none held out
    assert float(rows["4"]["iia_p"]) == pytest.approx(0.7951672, rel=1e-5)
    # the other way round: the differences turned, the same p
    report_command([str(tmp_path), "--compare", "model=lstm,gru", "--out", str(tmp_path / "turned")])
    capsys.readouterr()
    turned = (tmp_path / "turned" / "report.md").read_text()
    assert "| 16 | 0>0 | count | 3 | -0.310 [-0.534, -0.086] p=0.027 (n=3) |" in turned


def test_compare_over_one_seed_gives_the_difference_alone(tmp_path: Path) -> None:
    compared_run(tmp_path, "gru", 16, 0, 0.9)
    compared_run(tmp_path, "lstm", 16, 0, 0.7)
    markdown, _ = report.report(tmp_path, comparison=report.Comparison.parse("model=gru,lstm"))
    assert "| 0>0 | count | 1 | 0.200 (n=1) | 0.200 (n=1) |" in markdown  # no hits kept: no bootstrap
    assert "for the validation IIA, a paired bootstrap over its pairs" in markdown


@pytest.mark.parametrize("same_pairs", [True, False])
def test_compare_over_one_seed_bootstraps_its_pairs(tmp_path: Path, same_pairs: bool) -> None:
    """Two runs of one seed on the same 20 pairs: the GRU right on 18, the LSTM on 14, both right on 13
    (5 pairs right for the GRU alone, 1 for the LSTM alone); the validation IIA's difference 0.2 gets the paired bootstrap's interval over the 20 pairs (the test
    IIA, without hits, its difference alone). Pairs of different inputs are not compared pair by pair."""
    from alignsearch.intervals import paired_bootstrap

    gru, lstm = "1" * 13 + "11111" + "00", "1" * 13 + "00000" + "1" + "0"
    assert (gru.count("1"), lstm.count("1")) == (18, 14)
    compared_run(tmp_path, "gru", 16, 0, 0.9, hits=gru)
    compared_run(tmp_path, "lstm", 16, 0, 0.7, hits=lstm, pairs="p0" if same_pairs else "p1")
    markdown, _ = report.report(tmp_path, comparison=report.Comparison.parse("model=gru,lstm"))
    rows = list(csv.DictReader((tmp_path / "comparison.csv").open()))
    if not same_pairs:
        assert "| 0>0 | count | 1 | 0.200 (n=1) | 0.200 (n=1) |" in markdown
        assert rows[0]["iia_low"] == ""
        return
    diff, low, high = paired_bootstrap([int(h) for h in gru], [int(h) for h in lstm])
    assert (
        diff == pytest.approx(0.2) and low < 0.2 < high and high <= 0.45
    )  # 4 of 20 pairs differ, all one way
    assert float(rows[0]["iia_diff"]) == pytest.approx(0.2)
    assert (float(rows[0]["iia_low"]), float(rows[0]["iia_high"])) == (low, high)
    assert rows[0]["iia_pairs"] == "20"
    assert f"| 0>0 | count | 1 | 0.200 [{low:.3f}, {high:.3f}] (n=1, 20 pairs) | 0.200 (n=1) |" in markdown


def test_compare_refuses_what_the_runs_cannot_answer(tmp_path: Path, capsys) -> None:
    compared_run(tmp_path, "gru", 16, 0, 0.9)
    compared_run(tmp_path, "lstm", 16, 0, 0.7)
    refusals = {
        "model=gru": "error: --compare model=gru: expected <setting>=<a>,<b>, two values (model=gru,lstm)",
        "seed=0,1": "error: --compare seed=0,1: the seeds (seed, alignment_seed) are what a comparison pairs, not a condition",
        "model=gru,transformer": "error: --compare model=gru,transformer: no run has model=transformer"
        " (model: gru, lstm)",
        "colour=red,blue": "error: --compare colour=red,blue: no run has the setting colour (the settings: task,"
        " model, n_units, variables, model.d_model, direction, variable)",
    }
    for given, said in refusals.items():
        with pytest.raises(SystemExit) as stopped:
            report_command([str(tmp_path), "--compare", given])
        assert stopped.value.code == 2
        out, err = capsys.readouterr()
        assert (out, err.strip()) == ("", said)
    assert not (tmp_path / "report.md").exists() and not (tmp_path / "comparison.csv").exists()
