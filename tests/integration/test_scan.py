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
    assert reader.fieldnames == COLUMNS
    assert [(r["site"], r["position"]) for r in rows] == [(s, p) for s in sites for p in POSITIONS]
    assert all(int(r["steps"]) == 50 for r in rows)
    assert (folder / "scan.png").read_bytes().startswith(b"\x89PNG")
    summary = json.loads((folder / "scan.json").read_text())
    best = summary["best"]
    assert best["iia"] >= 0.8 and best["position"] == "last", best
    assert best["iia_control_random_subspace"] < 0.3, best  # an untrained subspace does not do it
    assert best["iia"] == max(float(r["iia"]) for r in rows)
    lines = done.stdout.splitlines()
    assert sum(line.startswith("[") and " @ " in line for line in lines) == len(rows)  # a line per cell
    table = lines[lines.index(next(line for line in lines if line.startswith("best cells"))) + 3]
    assert f"| {best['site']} " in table and "| last " in table  # the best cells, best first
    seconds = summary["seconds"]
    assert seconds["steps"] > 0.5 * seconds["cells"], seconds  # a cell is mostly its training steps


def test_a_resumed_scan_recomputes_nothing(counting_scan, monkeypatch) -> None:
    from alignsearch.search import run, scan

    folder, args, _, _ = counting_scan
    results = sorted(folder.glob("cells/*/results.json"))
    before = {p: p.stat().st_mtime_ns for p in results}
    csv_before = (folder / "scan.csv").read_text()

    def no_work(*_args, **_kw):
        raise AssertionError("a finished cell was computed again")

    monkeypatch.setattr(run, "fit_alignment", no_work)
    monkeypatch.setattr(scan.SiteStates, "_compute_sources", no_work)
    monkeypatch.setattr(scan.SiteStates, "_compute_bases", no_work)
    done = run_here("alignsearch.scan", *args, zoo=folder.parent / "zoo", cwd=folder.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("already done") == len(results)
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
