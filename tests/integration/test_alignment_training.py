"""AlignmentModule: it learns, IIA teacher-forced equals free-running, runs are deterministic and resume."""

from __future__ import annotations

import dataclasses
import re

import lightning as L
import pytest
import torch

from alignsearch import zoo
from alignsearch.cli.checks import model_request
from alignsearch.intervals import wilson
from alignsearch.search.fit import build_pairs, fit_alignment
from alignsearch.search.module import AlignmentModule
from alignsearch.search.pairs import select
from alignsearch.settings import HardwareSettings
from tests.helpers import SMALL_GRU, TINY_ALIGNMENT, compose_config, plan_of

HARDWARE = HardwareSettings(
    accelerator="cpu", devices=1, precision="32-true", threads=None, progress_bar=False
)


def setup(trained_zoo, tmp_path, *overrides: str):
    cfg = compose_config(
        "run_alignment",
        [
            f"paths.zoo_dir={trained_zoo}",
            f"paths.output_dir={tmp_path}",
            *SMALL_GRU,
            *TINY_ALIGNMENT,
            *overrides,
        ],
    )
    req = model_request(cfg)
    entry = zoo.load(req.path, req)
    return cfg, plan_of(cfg, [entry]), entry


def test_das_learns_count_within_a_small_budget(trained_zoo, tmp_path) -> None:
    cfg, plan, entry = setup(
        trained_zoo, tmp_path, "alignment.max_steps=150", "alignment.val_every=50", "alignment.n_train=2048"
    )
    out = fit_alignment(plan, [entry.model], tmp_path, seed=0, hardware=HARDWARE)
    (record,) = out.records
    assert record.iia_step0 < 0.5
    assert record.iia >= record.iia_step0 + 0.3, record
    assert record.iia_test >= record.iia_step0 + 0.3, record
    assert [h["step"] for h in out.history if h["split"] == "val"][:2] == [0, 50]


def test_stop_at_null_trains_exactly_max_steps(trained_zoo, tmp_path) -> None:
    """A low ``stop_at`` ends training at the first evaluation; ``stop_at=null`` (and a patience that
    would stop at the first evaluation without progress) runs every step, and keeps the best one."""
    steps = ["alignment.max_steps=30", "alignment.val_every=10", "alignment.patience=0"]
    cfg, plan, entry = setup(trained_zoo, tmp_path / "stop", *steps, "alignment.stop_at=0.001")
    stopped = fit_alignment(plan, [entry.model], tmp_path / "stop", seed=0, hardware=HARDWARE)
    assert stopped.steps == 10

    cfg, plan, entry = setup(trained_zoo, tmp_path / "all", *steps, "alignment.stop_at=null")
    assert plan.settings.stop_at is None
    out = fit_alignment(plan, [entry.model], tmp_path / "all", seed=0, hardware=HARDWARE)
    assert out.steps == 30
    val = [h for h in out.history if h["split"] == "val"]
    assert [h["step"] for h in val] == [0, 10, 20, 30]
    best = max((h for h in val if h["step"] > 0), key=lambda h: h["iia"])
    assert out.best_step == best["step"]


def test_alignment_prints_progress_lines_when_stdout_is_not_a_terminal(trained_zoo, tmp_path, capsys) -> None:
    cfg, plan, entry = setup(trained_zoo, tmp_path)
    hardware = dataclasses.replace(HARDWARE, progress_bar=True)
    fit_alignment(plan, [entry.model], tmp_path, seed=0, hardware=hardware)
    printed = capsys.readouterr().out
    line = r"^step 20/20 \(100%\), [\d.]+ s, .* steps/s, loss [\d.e-]+, val/iia_mean [\d.]+, val/iia_min "
    assert re.search(line, printed, re.M), printed


def free_running_correct(module: AlignmentModule, track, batch) -> torch.Tensor:
    """Generate every task token from the model's own previous predictions; True where all are right."""
    ids, task = batch["ids"], batch["task_mask"]
    generated = ids.clone()
    for t in range(1, ids.shape[1]):
        if not task[:, t].any():
            continue
        prefix = {**batch, "ids": generated[:, : t + 1], "task_mask": task[:, : t + 1]}
        preds = module.run(track, prefix).preds
        generated[:, t] = torch.where(task[:, t], preds[:, t - 1], generated[:, t])
    return ((generated == ids) | ~task).all(1)


@pytest.mark.parametrize("variables", ["count,null", "phase", "full"])
def test_trial_iia_teacher_forced_equals_free_running(trained_zoo, tmp_path, variables) -> None:
    cfg, plan, entry = setup(trained_zoo, tmp_path, f"alignment.variables=[{variables}]")
    train, evals, tracks = build_pairs(plan, [entry.model], seed=3)
    L.seed_everything(1, verbose=False)
    module = AlignmentModule([entry.model], ["layer.0"], plan.build_interchange(), tracks).eval()
    for p in module.interchange.parameters():  # a partly aligned map: some pairs right, some wrong
        p.data.add_(torch.randn_like(p) * 0.05)
    for track in tracks:
        batch = select(evals["val"][track.name], torch.arange(128))
        with torch.no_grad():
            out = module.run(track, batch)
            preds, targets, task = out.preds, out.targets, out.task
            teacher_forced = ((preds == targets) | ~task).all(1)
            free = free_running_correct(module, track, batch)
        assert torch.equal(teacher_forced, free)
        if track.variable == "null":  # swapping the remainder of a near-identity map: mostly right
            assert 0 < int(teacher_forced.sum()) < 128


def test_same_seed_same_results(trained_zoo, tmp_path) -> None:
    runs = []
    for name in ("a", "b"):
        cfg, plan, entry = setup(trained_zoo, tmp_path / name)
        runs.append(fit_alignment(plan, [entry.model], tmp_path / name, seed=0, hardware=HARDWARE))
    assert runs[0].records == runs[1].records
    for key, value in runs[0].state.items():
        torch.testing.assert_close(runs[1].state[key], value, rtol=0, atol=0)


def test_the_heldout_curve_changes_no_result(trained_zoo, tmp_path) -> None:
    """Held-out pairs are evaluated at the end for the records; ``alignment.heldout_curve`` adds their
    curve at every evaluation, and nothing else: the same records and the same kept weights."""
    runs = []
    for curve in ("false", "true"):
        cfg, plan, entry = setup(trained_zoo, tmp_path / curve, f"alignment.heldout_curve={curve}")
        runs.append(fit_alignment(plan, [entry.model], tmp_path / curve, seed=0, hardware=HARDWARE))
    without, with_curve = runs
    assert without.records == with_curve.records and without.best_step == with_curve.best_step
    assert without.records[0].iia_heldout is not None
    for key, value in without.state.items():
        torch.testing.assert_close(with_curve.state[key], value, rtol=0, atol=0)
    assert {h["split"] for h in without.history} == {"val"}
    assert {h["split"] for h in with_curve.history} == {"val", "heldout"}
    assert [h["step"] for h in with_curve.history if h["split"] == "heldout"] == [
        h["step"] for h in with_curve.history if h["split"] == "val"
    ]


class Crash(L.Callback):
    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == 15:
            raise RuntimeError("simulated crash")


def test_interrupted_alignment_resumes(trained_zoo, tmp_path) -> None:
    cfg, plan, entry = setup(trained_zoo, tmp_path / "straight")
    straight = fit_alignment(plan, [entry.model], tmp_path / "straight", seed=0, hardware=HARDWARE)

    cfg, plan, entry = setup(trained_zoo, tmp_path / "crashed")
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_alignment(
            plan, [entry.model], tmp_path / "crashed", seed=0, hardware=HARDWARE, callbacks=[Crash()]
        )
    assert (tmp_path / "crashed" / "checkpoints" / "last.ckpt").is_file()
    resumed = fit_alignment(plan, [entry.model], tmp_path / "crashed", seed=0, hardware=HARDWARE)
    assert resumed.steps == straight.steps == 20
    assert resumed.records == straight.records
    assert [h["step"] for h in resumed.history if h["split"] == "val"] == [0, 10, 20]


def test_iia_by_position_splits_the_iia_by_where_the_pairs_intervene(trained_zoo, tmp_path) -> None:
    cfg, plan, entry = setup(trained_zoo, tmp_path)
    _, evals, tracks = build_pairs(plan, [entry.model], seed=0)
    module = AlignmentModule([entry.model], ["layer.0"], plan.build_interchange(), tracks, eval_splits=())
    val = evals["val"]
    (track,) = tracks
    out = module.evaluate(val, batch_size=50)[track.name]
    positions = val[track.name]["pos"]
    by_position = out["iia_by_position"]
    assert sorted(int(p) for p in by_position) == sorted(set(positions.tolist()))
    weights = {str(p): int((positions == p).sum()) for p in set(positions.tolist())}
    weighted = sum(by_position[p] * n for p, n in weights.items()) / len(positions)
    assert weighted == pytest.approx(out["iia"], abs=1e-6)
    # asked for intervals: each position's pairs, and Wilson's interval of its IIA over them
    counted = module.evaluate(val, batch_size=50, intervals=("iia",))[track.name]
    assert counted["n_pairs_by_position"] == weights
    for pos, (low, high) in counted["iia_by_position_interval"].items():
        hits = round(by_position[pos] * weights[pos])
        assert (low, high) == wilson(hits, weights[pos]) and low <= by_position[pos] <= high
