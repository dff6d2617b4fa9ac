"""The scan: a short alignment at every site x position (``python -m alignsearch.scan``, ``api.scan``)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import (
    TINY_ALIGNMENT,
    TINY_TRAINING,
    assert_one_line_error,
    command_env,
    refusal,
    run_here,
)

POSITIONS = ("last", "-2", "-3")
COLUMNS = [
    "site", "position", "variable", "iia", "iia_control_random_subspace", "token_iia", "iia_step0",
    "steps", "seconds", "seconds_steps",
]  # fmt: skip
"""``scan.csv``'s columns with ``scan.controls_top=0`` (the scan before trained controls)."""
CONTROLLED_COLUMNS = [
    "site", "position", "variable", "iia", "iia_control_random_subspace", "iia_control_shuffled",
    "iia_control_untrained", "selectivity", "token_iia", "iia_step0", "steps", "seconds", "seconds_steps",
]  # fmt: skip
"""... with the trained controls (the default: shuffled and untrained at the best 3 cells by IIA)."""


def scanned_sites(folder: Path) -> list[str]:
    """Both layers of the tiny counting LM and their components and heads: every site it names beyond the
    embedding (``layer.<i>``, ``layer.<i>.attn``, ``.mlp`` and ``.head.<j>``)."""
    from alignsearch.models.lm import TextLM

    named = [s for s in TextLM(str(folder)).sites if s.startswith("layer.")]
    assert {"layer.1.attn", "layer.1.mlp", "layer.1.head.1"} <= set(named)
    return named


def scan_args(folder: Path, pairs: Path, out: Path, sites: list[str]) -> list[str]:
    return [
        "model=lm", f"model.path={folder}", "data=pairs", f"data.path={pairs}", "n_units=8",
        f"scan.sites=[{','.join(sites)}]", f"paths.output_dir={out}", "hardware.progress_bar=false",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    from alignsearch.text.toy import count_pair_rows

    path = tmp_path_factory.mktemp("scan_pairs") / "count.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in count_pair_rows(600, seed=0)))
    return path


@pytest.fixture(scope="module")
def counting_scan(toy_lms, pairs_file, tmp_path_factory):
    """The scan of the README's tiny counting LM over both layers, their components and heads and the
    last three positions (50 steps a cell), run once by the command; its folder, arguments and output."""
    root = tmp_path_factory.mktemp("counting_scan")
    sites = scanned_sites(toy_lms["gpt2"])
    args = scan_args(toy_lms["gpt2"], pairs_file, root / "scan", sites)
    done = run_here("alignsearch.scan", *args, zoo=root / "zoo", cwd=root)
    assert done.returncode == 0, done.stderr
    return root / "scan", args, sites, done


def test_the_scan_of_the_counting_lm_finds_where_it_counts(counting_scan) -> None:
    folder, _, sites, done = counting_scan
    with (folder / "scan.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == CONTROLLED_COLUMNS
    assert [(r["site"], r["position"]) for r in rows] == [(s, p) for s in sites for p in POSITIONS]
    assert all(int(r["steps"]) == 50 for r in rows)
    assert (folder / "scan.png").read_bytes().startswith(b"\x89PNG")
    summary = json.loads((folder / "scan.json").read_text())
    best, by_iia = summary["best"], summary["best_by_iia"]
    assert by_iia["iia"] >= 0.8 and by_iia["position"] == "last", by_iia
    assert by_iia["iia"] == max(float(r["iia"]) for r in rows)
    controlled = [r for r in rows if r["selectivity"] != ""]
    assert len(controlled) == 3  # scan.controls_top's default
    assert best["selectivity"] == max(float(r["selectivity"]) for r in controlled), best
    assert best["iia_control_random_subspace"] < 0.3, best  # an untrained subspace does not do it
    lines = done.stdout.splitlines()
    per_cell = [line for line in lines if line.startswith("[") and not line.startswith("[control ")]
    assert sum(" @ " in line for line in per_cell) == len(rows)  # a line per cell
    assert sum(line.startswith("[control ") for line in lines) == 3 * 2  # a line per trained control
    table = lines[lines.index(next(line for line in lines if line.startswith("best cells"))) + 3]
    assert f"| {best['site']} " in table and "| last " in table  # the best cells, best first
    seconds = summary["seconds"]
    assert seconds["steps"] > 0.5 * seconds["cells"], seconds  # a cell is mostly its training steps


def forbid_training(monkeypatch, why: str):
    """Make any alignment training (a cell's run, a trained control) fail with ``why``; the failing
    function, to forbid more with."""
    from alignsearch.search import controls, run

    def no_work(*_args, **_kw):
        raise AssertionError(why)

    monkeypatch.setattr(run, "fit_alignment", no_work)
    monkeypatch.setattr(controls, "fit_alignment", no_work)  # the trained controls at the best cells
    return no_work


def test_a_resumed_scan_recomputes_nothing(counting_scan, monkeypatch) -> None:
    from alignsearch.search import scan

    folder, args, _, _ = counting_scan
    results = sorted(folder.glob("cells/*/results.json"))
    before = {p: p.stat().st_mtime_ns for p in results}
    csv_before = (folder / "scan.csv").read_text()

    no_work = forbid_training(monkeypatch, "a finished cell was computed again")
    monkeypatch.setattr(scan.SiteStates, "_compute_sources", no_work)
    monkeypatch.setattr(scan.SiteStates, "_compute_bases", no_work)
    done = run_here("alignsearch.scan", *args, zoo=folder.parent / "zoo", cwd=folder.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("already done") == len(results) + 3 * 2  # the cells and their controls
    assert {p: p.stat().st_mtime_ns for p in results} == before
    assert (folder / "scan.csv").read_text() == csv_before


def test_a_cell_is_the_run_alignment_command_at_its_site_and_position(counting_scan, monkeypatch) -> None:
    """``run_alignment.py`` with the cell's site, position, steps and control finds the cell's results."""
    from alignsearch.search import run

    folder, args, _, _ = counting_scan
    cell = folder / "cells" / "layer.1@last"
    config = json.loads((cell / "results.json").read_text())["config"]
    assert config["layer"] == 1 and config["position"] == "last" and config["max_steps"] == 50
    monkeypatch.setattr(run, "fit_alignment", lambda *a, **k: pytest.fail("the cell trained again"))
    run_args = [a for a in args if not a.startswith(("scan.", "paths."))]
    done = run_here(
        "run_alignment.py", *run_args, "layer=1", "position=last", "alignment.max_steps=50",
        "alignment.controls=[random_subspace]", f"paths.output_dir={cell}",
        zoo=folder.parent / "zoo", cwd=folder.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "already done" in done.stdout


def test_then_align_runs_the_full_alignment_at_the_best_cell(counting_scan, monkeypatch) -> None:
    from alignsearch.search import run

    folder, args, _, _ = counting_scan
    calls = []
    fit = run.fit_alignment
    monkeypatch.setattr(run, "fit_alignment", lambda *a, **k: calls.append(a[2]) or fit(*a, **k))
    done = run_here(
        "alignsearch.scan", *args, "scan.then_align=true", "alignment.max_steps=100",
        zoo=folder.parent / "zoo", cwd=folder.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert calls == [folder / "best"]  # the cells were done: only the full alignment trained
    best = json.loads((folder / "scan.json").read_text())["best"]
    results = json.loads((folder / "best" / "results.json").read_text())
    assert results["config"]["max_steps"] == 100 and results["config"]["position"] == best["position"]
    assert results["config"]["site"] == best["site"]
    assert "| 0>0 " in done.stdout  # its records' table


def test_bad_scan_settings_are_one_line(in_command_env, toy_lms, pairs_file, tmp_path) -> None:
    """Settings the scan cannot use stop before any work with one line naming the key."""
    for args, says in (
        (["scan.steps=0"], "scan.steps=0 is not allowed: expected a positive integer"),
        (["scan.positions=[foo]"], "scan.positions=[foo] is not allowed"),
        (["scan.positions=[last,-1]"], "last is there twice"),
        (["scan.sitez=[layer.0]"], "did you mean scan.sites?"),
        (["scan.sites=[layer.3]"], "scan.sites=layer.3 is not allowed: expected a site of the gru"),
        (["scan.positions=[marker:Q]"], "a token of the task"),
        (["scan.show=heat"], "scan.show=heat is not allowed: expected one of iia, selectivity, or null"),
        (
            ["scan.controls_top=0", "scan.show=selectivity"],
            "scan.show=selectivity is not allowed: expected iia or null: no cell has a trained control",
        ),
        (["scan.controls_top=-1"], "scan.controls_top=-1 is not allowed: expected a non-negative integer"),
        (
            ["scan.top_controls=[nope]"],
            "scan.top_controls=[nope] is not allowed: expected a list of distinct",
        ),
        (["alignment=mas"], "a one-model alignment"),
        (["model.d_model=32", "n_units=64"], "n_units=64 is not allowed"),
    ):
        line = refusal("alignsearch.scan", *args)
        assert says in line and "\n" not in line, (args, line)
    line = refusal("run_alignment.py", "position=two")  # a run's position, by the same rule
    assert "position=two is not allowed: expected any (each pair's own position), last, a token" in line
    out = tmp_path / "refused"
    for sites, extra, says in (  # language models: checked once loaded, before any training
        (["layer.9"], [], "scan.sites=layer.9 is not allowed"),
        (["transformer.h.0.atn"], [], "close matches: transformer.h.0.attn"),
        (["layer.0"], ["scan.positions=[12]"], "scan.positions=12 is not allowed: expected a position the"),
    ):
        args = [*scan_args(toy_lms["gpt2"], pairs_file, out, sites), *extra]
        done = run_here("alignsearch.scan", *args, zoo=in_command_env, cwd=tmp_path)
        assert_one_line_error(done, says)
        assert not out.exists()  # a refused scan leaves nothing behind
    done = subprocess.run(
        [sys.executable, "-m", "alignsearch.scan", "scan.steps=0"], cwd=tmp_path, env=command_env(in_command_env),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert_one_line_error(done, "scan.steps=0 is not allowed")


def test_the_scan_of_a_task_transformer(tmp_path) -> None:
    """A Transformer on MultiObject scans its layers x the positions around the trigger (and each pair's
    own), through the API, in one folder like the command's."""
    from alignsearch import api
    from alignsearch.search.scan import cell_folder

    zoo = tmp_path / "zoo"
    entry = api.model(
        "transformer", zoo_dir=zoo, overrides=[o for o in TINY_TRAINING if not o.startswith("hardware")]
    )
    tiny = {o.split("=")[0].removeprefix("alignment."): int(o.split("=")[1]) for o in TINY_ALIGNMENT}
    tiny.pop("max_steps")
    out = tmp_path / "scan"
    positions = ["any", "marker:T:-1", "marker:T:+1"]
    result = api.scan(entry, positions=positions, steps=10, n_units=4, out_dir=out, progress=False, **tiny)
    assert [(c.site, c.position) for c in result.cells] == [
        (s, p) for s in ("embedding", "layer.0", "layer.1") for p in positions
    ]
    assert all(c.steps == 10 and "random_subspace" in c.controls for c in result.cells)
    assert result.best() in result.cells and "| 1 " in result.table(3)
    assert len((out / "scan.csv").read_text().splitlines()) == 1 + 9 and (out / "scan.png").is_file()
    cell = out / "cells" / cell_folder("layer.1", "marker:T:+1")
    config = json.loads((cell / "results.json").read_text())["config"]
    assert config["position"] == "marker:T:+1" and config["layer"] == 1
    with pytest.raises(Exception, match="steps=0 is not allowed"):
        api.scan(entry, steps=0, out_dir=out)


def test_task_pairs_at_a_fixed_position() -> None:
    """``marker:T:+1`` intervenes on the first response of every base and source, ``-2`` on the last."""
    from alignsearch import api
    from alignsearch.components import build_task
    from alignsearch.seeding import generator
    from alignsearch.settings import position_of
    from alignsearch.tasks import causal_model_for
    from alignsearch.tasks.counterfactual import make_pairs

    task = build_task(api.config("train_task_model", []).task)
    updown, v = causal_model_for(task, "updown"), task.vocab
    rows = torch.arange(200)
    pairs = make_pairs(task, updown, "count", 200, generator(0, "t"), position=position_of("marker:T:+1"))
    for seqs, pos in ((pairs.base, pairs.base_pos), (pairs.source, pairs.source_pos)):
        assert (seqs.ids[rows, pos - 1] == v.trigger).all()
    pairs = make_pairs(task, updown, "count", 200, generator(0, "t"), position=position_of("-2"))
    assert (pairs.base.ids[rows, pairs.base_pos + 1] == v.eos).all()
    with pytest.raises(Exception, match="position=marker:T is not allowed"):  # the trigger is never one
        make_pairs(task, updown, "count", 50, generator(0, "t"), position=position_of("marker:T"))


def test_text_pairs_move_to_a_position_without_tokenising(toy_lms) -> None:
    from alignsearch.models.lm import TextLM
    from alignsearch.settings import position_of
    from alignsearch.text.pairs import reposition, text_pairs

    tokenizer = TextLM(str(toy_lms["gpt2"])).tokenizer
    rows = [
        {"base": "cup cup . how many ?", "source": "pen . how many ?", "target": " one"},
        {
            "base": "egg . how many ?",
            "source": "key key key . how many ?",
            "target": " three",
            "split": "val",
        },
    ]
    rows[0]["split"] = "train"
    data = text_pairs(rows, tokenizer)
    moved, kept = reposition(data, position_of("marker:.:-1"))  # the last object word
    assert moved.splits["train"].base_pos.tolist() == [1] and moved.splits["train"].source_pos.tolist() == [0]
    assert moved.splits["val"].base_pos.tolist() == [0] and moved.splits["val"].source_pos.tolist() == [2]
    assert torch.equal(moved.splits["val"].ids, data.splits["val"].ids)  # the same tokens
    moved, kept = reposition(data, position_of("-6"))  # only the 6-token prompts of train have it
    assert len(moved.splits["train"]) == 0 and kept["train"].tolist() == []


def test_the_shared_states_are_the_runs_own(toy_lms) -> None:
    """A scan's cached vectors and target states are what a run computes for itself."""
    from alignsearch import api
    from alignsearch.search.pairs import BASE, PrefixCache, Track, add_base_states
    from alignsearch.search.scan import SiteStates
    from alignsearch.search.text_data import TextPairSource
    from alignsearch.settings import position_of
    from alignsearch.text import toy

    lm = api.language_model(toy_lms["gpt2"])
    data = api.text_pairs(toy.count_pair_rows(150, seed=1), lm.tokenizer)
    cache = PrefixCache(64, Path("unused"))
    sites = ["embedding", "layer.0", "layer.1", "transformer.h.0.mlp"]
    states = SiteStates(data, [lm], sites, ["last", "-2"], cache)
    for spec in ("last", "-2"):
        position = position_of(spec)
        own = TextPairSource(data).at(position)
        for site in ("embedding", "layer.1", "transformer.h.0.mlp"):
            batch = own.tensors(own.data.splits["train"], lm, site)
            track = Track(0, 0, "count")
            add_base_states([{track.name: batch}], [track], [lm], [site], PrefixCache(64, Path("unused")))
            assert torch.allclose(states.source_vectors(0, site, position, "train"), batch["src"], atol=1e-5)
            base = states.base_states(0, site, position, "train")
            if site.startswith("transformer"):  # a module path: its steps run the whole model
                assert base is None and BASE not in batch
            else:
                assert torch.allclose(base, batch[BASE], atol=1e-5)
    assert states.passes == 2  # one pass over the sources and one over the bases, for every site


# -- the trained controls at the best cells ------------------------------------------------------------
SMALL_SCAN = {
    "sites": ["layer.0", "layer.1"], "positions": ["last", -2], "steps": 40, "n_units": 8, "val_every": 40,
    "n_val": 128, "n_heldout": 64, "n_test": 64, "controls_top": 2,
}  # fmt: skip
"""A scan of the tiny counting LM in seconds: 2 sites x 2 positions, 40 steps a cell, the trained
controls (shuffled, untrained) at the best 2 cells by IIA."""


def small_scan(lm_folder: Path, out: Path, **changed):
    """``api.scan`` of :data:`SMALL_SCAN` (``changed``) in ``out``: its result and the lines it printed."""
    import contextlib
    import io

    from alignsearch import api
    from alignsearch.text import toy

    lm = api.language_model(lm_folder)
    pairs = api.text_pairs(toy.count_pair_rows(300, seed=0), lm.tokenizer)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = api.scan(lm, data=pairs, out_dir=out, **(SMALL_SCAN | changed))
    return result, printed.getvalue().splitlines()


@pytest.fixture(scope="module")
def controlled_scan(toy_lms, tmp_path_factory):
    """:data:`SMALL_SCAN` run once: its folder, result and lines."""
    out = tmp_path_factory.mktemp("controlled_scan") / "scan"
    result, lines = small_scan(toy_lms["gpt2"], out)
    return out, result, lines


def csv_rows(folder: Path) -> tuple[list[str], list[dict[str, str]]]:
    with (folder / "scan.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    return list(reader.fieldnames or []), rows


CONTROL_COLUMNS = ("iia_control_random_subspace", "iia_control_shuffled", "iia_control_untrained")


def test_the_trained_controls_run_at_the_best_cells_by_iia(controlled_scan) -> None:
    """Exactly ``controls_top`` cells have the trained controls, the best by IIA; their selectivity is the
    IIA minus the best of their controls, the others' is empty."""
    folder, result, lines = controlled_scan
    columns, rows = csv_rows(folder)
    assert columns == CONTROLLED_COLUMNS
    controlled = [r for r in rows if r["iia_control_shuffled"] != ""]
    others = [r for r in rows if r not in controlled]
    assert len(controlled) == 2 and len(others) == 2
    assert all(r["iia_control_untrained"] != "" for r in controlled)
    assert all(r["iia_control_untrained"] == r["selectivity"] == "" for r in others)
    assert min(float(r["iia"]) for r in controlled) >= max(float(r["iia"]) for r in others)
    by_iia = [(c.site, c.position) for c in result.ranked_by_iia()[:2]]
    assert sorted((r["site"], r["position"]) for r in controlled) == sorted(by_iia)
    for r in controlled:
        best_control = max(float(r[c]) for c in CONTROL_COLUMNS)
        assert float(r["selectivity"]) == pytest.approx(float(r["iia"]) - best_control, abs=2e-4), r
    assert max(float(r["iia"]) for r in controlled) >= 0.8  # the count is there at the last token
    for cell in result.cells:  # the result says what the csv says
        row = next(r for r in rows if (r["site"], r["position"]) == (cell.site, cell.position))
        shown = result.selectivity(cell)
        assert (shown is None) == (row["selectivity"] == "")
        if shown is not None:
            assert shown == pytest.approx(cell.iia - max(v for v in cell.controls.values() if v is not None))
    for name in ("shuffled", "untrained"):  # in the cell's folder, as a run keeps its controls
        saved = [json.loads(p.read_text()) for p in folder.glob(f"cells/*/controls/{name}/scan_control.json")]
        assert len(saved) == 2 and all(s["control"] == name and s["steps"] == 40 for s in saved)
    summary = json.loads((folder / "scan.json").read_text())
    assert summary["seconds"]["controls"] > 0 and summary["trained_controls"] == ["shuffled", "untrained"]
    assert summary["best_by_iia"]["iia"] == max(float(r["iia"]) for r in rows)


def test_the_controlled_cells_rank_first_by_selectivity(controlled_scan) -> None:
    folder, result, lines = controlled_scan
    ranked = result.ranked()
    assert [result.selectivity(c) is not None for c in ranked] == [True, True, False, False]
    selectivities = [result.selectivity(c) for c in ranked[:2]]
    assert selectivities == sorted(selectivities, reverse=True)
    assert [c.iia for c in ranked[2:]] == sorted((c.iia for c in ranked[2:]), reverse=True)
    assert result.best() is ranked[0] and result.best_by_iia().iia == max(c.iia for c in result.cells)
    summary = json.loads((folder / "scan.json").read_text())
    assert (summary["best"]["site"], summary["best"]["position"]) == (ranked[0].site, ranked[0].position)
    assert (
        "controls shuffled, untrained trained at the top 2 cells by IIA; the others have none"
        in "\n".join(lines)
    )
    assert sum(line.startswith("[control ") for line in lines) == 2 * 2  # a line per control and cell
    header = next(i for i, line in enumerate(lines) if line.startswith("best cells, by selectivity"))
    assert "| selectivity |" in lines[header + 1] and "| control: shuffled |" in lines[header + 1]
    first = lines[header + 3]
    assert f"| {ranked[0].site} " in first and f"| {ranked[0].position} " in first
    assert lines[header + 5].rstrip().endswith("| -           | 40    |")  # the third: no selectivity


def test_a_scan_run_again_reuses_its_controls(controlled_scan, toy_lms, monkeypatch) -> None:
    folder, result, _ = controlled_scan
    saved = sorted(folder.glob("cells/*/controls/*/scan_control.json"))
    before = {p: p.stat().st_mtime_ns for p in saved}
    csv_before = (folder / "scan.csv").read_text()
    forbid_training(monkeypatch, "trained again")
    again, lines = small_scan(toy_lms["gpt2"], folder)
    assert {p: p.stat().st_mtime_ns for p in saved} == before
    assert (folder / "scan.csv").read_text() == csv_before
    assert [line for line in lines if line.startswith("[control ")] and all(
        line.endswith("already done") for line in lines if line.startswith("[control ")
    )
    assert [(c.site, c.position, c.controls) for c in again.ranked()] == [
        (c.site, c.position, c.controls) for c in result.ranked()
    ]


def test_controls_top_0_is_the_scan_ranked_by_iia(controlled_scan, toy_lms, tmp_path, monkeypatch) -> None:
    """Without trained controls a scan is what it was: its columns, ranked by IIA; with fewer, the cells
    that keep them are the best by IIA (the same cells, found done)."""
    import shutil

    from alignsearch.search import controls, run

    folder, result, _ = controlled_scan
    copy = tmp_path / "scan"
    shutil.copytree(folder, copy)
    monkeypatch.setattr(run, "fit_alignment", lambda *a, **k: pytest.fail("a cell trained again"))
    monkeypatch.setattr(controls, "fit_alignment", lambda *a, **k: pytest.fail("a control trained"))
    plain, lines = small_scan(toy_lms["gpt2"], copy, controls_top=0)
    columns, rows = csv_rows(copy)
    assert columns == COLUMNS
    assert not any(line.startswith("[control ") or "trained at" in line for line in lines)
    assert plain.best() is plain.best_by_iia() and plain.ranked() == plain.ranked_by_iia()
    assert all(set(c.controls) == {"random_subspace"} for c in plain.cells)
    assert "selectivity" not in json.loads((copy / "scan.json").read_text())["best"]
    one, lines = small_scan(toy_lms["gpt2"], copy, controls_top=1)
    _, rows = csv_rows(copy)
    controlled = [(r["site"], r["position"]) for r in rows if r["selectivity"] != ""]
    first = plain.best_by_iia()  # chosen by IIA before any trained control ran (ties: random_subspace's)
    assert controlled == [(first.site, first.position)]
    assert "trained at the top 1 cells by IIA" in "\n".join(lines)


def test_the_heatmap_shows_selectivity_and_marks_the_cells_not_controlled(
    controlled_scan, tmp_path, monkeypatch
) -> None:
    from alignsearch.report import plots

    _, result, _ = controlled_scan
    figures = []
    close = plots.plt.close
    monkeypatch.setattr(plots.plt, "close", lambda fig: figures.append(fig) or close(fig))
    for show, blank in (("selectivity", 2), ("iia", 0)):
        path = plots.scan_heatmap(result, tmp_path / f"{show}.png", 40, show=show)
        assert path.read_bytes().startswith(b"\x89PNG")
        texts = [t.get_text() for ax in figures[-1].axes for t in ax.texts]
        assert texts.count("not\ncontrolled") == blank, texts
        shown = sorted(float(t) for t in texts if t != "not\ncontrolled")
        values = [result.selectivity(c) if show == "selectivity" else c.iia for c in result.cells]
        assert shown == sorted(round(v, 2) for v in values if v is not None)


def test_cells_rank_by_selectivity_where_it_differs_from_iia(tmp_path) -> None:
    """A cell with a high IIA that a trained control reaches too ranks below one that is selective; the
    cells without trained controls follow by IIA, and ``best_by_iia`` still finds the highest IIA."""
    from alignsearch.search.results import RunStatus
    from alignsearch.search.scan_results import ScanCell, ScanResult

    def cell(site: str, iia: float, **controls: float) -> ScanCell:
        return ScanCell(
            site, "last", "count", iia, None, None, {"random_subspace": 0.05, **controls}, 50, {}, tmp_path,
            RunStatus.DONE, track="0>0/count",
        )  # fmt: skip

    steerable = cell("layer.0", 0.95, shuffled=0.9, untrained=0.2)  # fooled: the controls reach it too
    selective = cell("layer.1", 0.8, shuffled=0.1, untrained=0.3)
    subspace = cell("layer.2", 0.7, shuffled=0.0, untrained=0.0, random_subspace=0.4)  # the best control
    unchecked = [cell("layer.3", 0.99), cell("layer.4", 0.5)]
    cells = [steerable, selective, subspace, *unchecked]
    result = ScanResult(
        [c.site for c in cells], ["last"], ("random_subspace", "shuffled", "untrained"), cells, tmp_path,
        trained_controls=("shuffled", "untrained"), controls_top=3,
    )  # fmt: skip
    assert [c.site for c in result.ranked()] == ["layer.1", "layer.2", "layer.0", "layer.3", "layer.4"]
    assert result.best() is selective and result.best_by_iia() is unchecked[0]
    assert [result.selectivity(c) for c in cells] == [
        pytest.approx(0.05),
        pytest.approx(0.5),
        pytest.approx(0.3),
        None,
        None,
    ]
    rows = list(csv.DictReader(result.csv().splitlines()))
    assert [r["selectivity"] for r in rows] == ["0.05", "0.5", "0.3", "", ""]
    assert [r["iia_control_shuffled"] for r in rows] == ["0.9", "0.1", "0.0", "", ""]
    assert result.table(2).splitlines()[2].startswith("| 1 | layer.1 ")
    assert result.controlled_line() == (
        "controls shuffled, untrained trained at the top 3 cells by IIA; the others have none (no selectivity)"
    )
    plain = ScanResult([c.site for c in cells], ["last"], ("random_subspace",), cells, tmp_path)
    assert plain.best() is unchecked[0] and plain.controlled_line() is None  # no trained controls: by IIA
    assert "selectivity" not in plain.columns and "selectivity" not in plain.table()
