"""Model Alignment Search: partners, directions, the MAS family, latent targets, similarity baselines."""

from __future__ import annotations

import json
import math
import shutil
import statistics

import lightning as L
import pytest
import torch

from alignsearch import api, report
from alignsearch.alignment import FixedLayout, Interchange, Rotation
from alignsearch.models import GRU, SequenceModel
from alignsearch.search.latent_targets import histogram_divergence, latent_targets
from alignsearch.search.module import AlignmentModule
from alignsearch.search.pairs import Track, pair_tensors, select
from alignsearch.seeding import generator
from alignsearch.similarity import cka, correlation, pair_measures, probe_accuracy
from alignsearch.tasks import NumericTask, causal_model_for
from alignsearch.tasks.counterfactual import make_pairs
from tests.helpers import (
    TINY_ALIGNMENT,
    TINY_SUFFIX,
    TINY_TRAINING,
    assert_refused,
    quick_similarity,
    run_here,
    run_pairs,
)

DIRECTIONS = ["0>0", "0>1", "1>0", "1>1"]


def load_results(root, pattern: str = "multirun/run_alignment/*/*/*/results.json") -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(root.glob(pattern))}


def test_users_mas_command_trains_each_model_once(zoo, tmp_path, monkeypatch) -> None:
    """`python run_alignment.py model=gru alignment=mas -m seed=1,2,3` on a fresh zoo: GRUs 1-4, trained once
    (the command run in this process; its similarity baselines on subsets of the default 1000 rows, one
    subset per run instead of 10)."""
    quick_similarity(monkeypatch, sample_size=1000, runs=1)
    done = run_here(
        "run_alignment.py",
        "model=gru",
        "alignment=mas",
        "-m",
        "seed=1,2,3",
        *TINY_TRAINING,
        *TINY_ALIGNMENT,
        zoo=zoo,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    trained = sorted(line.split("/")[-1] for line in done.stdout.splitlines() if line.startswith("training "))
    assert trained == [f"seed{s}-d_model32{TINY_SUFFIX}" for s in (1, 2, 3, 4)]
    runs = load_results(tmp_path)
    assert len(runs) == 3
    for folder, results in runs.items():
        seed = results["config"]["seed"]
        assert results["config"]["partner_seed"] == seed + 1
        records = results["records"]
        assert [r["direction"] for r in records] == DIRECTIONS
        assert all(r["trained"] and r["loss"] == "behaviour" for r in records)
        names = {r["direction"]: (r["source"], r["target"]) for r in records}
        first = f"multiobject/gru/seed{seed}-d_model32{TINY_SUFFIX}"
        second = f"multiobject/gru/seed{seed + 1}-d_model32{TINY_SUFFIX}"
        assert names["0>1"] == (first, second) and names["1>0"] == (second, first)
        # each direction's IIAs: the saved alignment on its validation and test pairs, drawn again here
        (saved,) = (
            api.load_alignment(p.parent / "alignment.pt")
            for p in tmp_path.glob("multirun/run_alignment/*/*/*/results.json")
            if p.parent.name == folder
        )
        models = [api.model(zoo_dir=zoo, seed=s, overrides=TINY_TRAINING) for s in (seed, seed + 1)]
        for r in records:
            source, target = (int(i) for i in r["direction"].split(">"))
            for split, key in (("val", "iia"), ("test", "iia_test")):
                pairs = run_pairs(
                    models[target].task, split=split, seed=seed, direction=r["direction"],
                    source_task=models[source].task,
                )  # fmt: skip
                scores = api.iia(saved, models, pairs, source=source, target=target)
                assert scores["iia"] == r[key], (r["direction"], split)
    similarity_files = sorted(tmp_path.glob("multirun/run_alignment/*/*/*/similarity.json"))
    assert len(similarity_files) == 3
    measures = json.loads(similarity_files[0].read_text())["measures"]
    assert {"cka_linear", "cka_rbf", "cka_dist_cos", "rsa_cos_spearman"} <= set(measures)
    assert all(-1 <= measures[k] <= 1 for k in measures if not k.startswith("probe"))
    # the sweep's report is over its seeds (issue 30: the partner, seed + 1, is part of the seed): each
    # direction is one row of n = 3, its mean and standard deviation over the three runs
    (sweep,) = tmp_path.glob("multirun/run_alignment/*/*")
    markdown, summary = report.report(sweep)
    assert [(row["direction"], row["n"]) for row in summary] == [(d, 3) for d in DIRECTIONS]
    for row in summary:
        direction = row["direction"]
        iias = [r["iia"] for res in runs.values() for r in res["records"] if r["direction"] == direction]
        assert (row["iia_mean"], row["iia_std"]) == (statistics.fmean(iias), statistics.stdev(iias))
    assert "partner_seed=seed + 1" in markdown
    assert "![mas_directions](plots/mas_directions.png)" in markdown


def test_every_mas_variant_through_the_cli(tiny_zoo, tmp_path, monkeypatch) -> None:
    quick_similarity(monkeypatch)
    done = run_here(
        "run_alignment.py",
        "-m",
        "alignment=unimas,clmas,stitch,latent_stitch",
        "partner.seed=0",  # the partner is the same zoo model: aligned with itself
        *TINY_TRAINING,
        *TINY_ALIGNMENT,
        zoo=tiny_zoo,  # only read: the model is there
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    runs = {r["config"]["alignment"]: r for r in load_results(tmp_path).values()}
    assert set(runs) == {"unimas", "clmas", "stitch", "latent_stitch"}
    loss = {name: {r["direction"]: r["loss"] for r in res["records"]} for name, res in runs.items()}
    assert loss["unimas"] == {"0>0": None, "0>1": "behaviour", "1>0": None, "1>1": "behaviour"}
    assert loss["clmas"] == {"0>0": "behaviour", "0>1": "latent", "1>0": "behaviour", "1>1": "latent"}
    assert loss["stitch"] == {"0>0": None, "0>1": "behaviour", "1>0": None, "1>1": None}
    assert loss["latent_stitch"] == {"0>0": None, "0>1": "latent", "1>0": None, "1>1": None}
    for name in ("clmas", "latent_stitch"):
        for r in runs[name]["records"]:
            has_latent = r["loss"] == "latent"
            assert ("cl_loss" in r) == has_latent
            if has_latent:
                # positive: targets were found, and intervened vectors are not exactly natural ones
                assert 0 < r["cl_loss"] < math.inf and 0 < r["cl_divergence"] < math.inf
    assert runs["stitch"]["config"]["n_units"] == 32  # the whole site
    assert runs["stitch"]["config"]["variables"] == ["full"]
    assert runs["clmas"]["config"]["cl_eps"] == pytest.approx(0.85)
    assert len(list(tmp_path.glob("multirun/run_alignment/*/*/*/similarity.json"))) == 4


def test_partners_of_other_architectures_tasks_and_causal_models(
    tiny_zoo, zoo, tmp_path, monkeypatch
) -> None:
    quick_similarity(monkeypatch)
    shutil.copytree(tiny_zoo, zoo)  # the first model is there; its partners are trained
    done = run_here(
        "run_alignment.py",
        "-m",
        "alignment=mas",
        "partner.model=lstm,transformer",
        "+partner.model_settings.d_model=48",
        "alignment.max_steps=10",
        *TINY_TRAINING,
        *TINY_ALIGNMENT,
        zoo=zoo,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    runs = load_results(tmp_path)
    targets = sorted(r["records"][1]["target"] for r in runs.values())
    assert targets == [f"multiobject/{m}/seed1-d_model48{TINY_SUFFIX}" for m in ("lstm", "transformer")]
    widths = {r["config"]["partner_model"]: r["config"]["n_units"] for r in runs.values()}
    assert widths == {"lstm": 16, "transformer": 16}  # models of widths 32 and 48 share one layout

    done = run_here(
        "run_alignment.py",
        "alignment=mas",
        "partner.task=sameobject",
        "partner.causal_model=upup",
        "partner.variables=[demo_count]",
        "alignment.max_steps=10",
        *TINY_TRAINING,
        *TINY_ALIGNMENT,
        zoo=zoo,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    (results,) = load_results(tmp_path, "outputs/run_alignment/*/results.json").values()
    by_direction = {r["direction"]: r for r in results["records"]}
    assert by_direction["0>1"]["target"] == f"sameobject/gru/seed1-d_model32{TINY_SUFFIX}"
    assert (by_direction["0>1"]["source_variable"], by_direction["0>1"]["target_variable"]) == (
        "count",
        "demo_count",
    )
    assert "source_variable" not in by_direction["0>0"]
    assert results["config"]["partner_causal_model"] == "upup"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["alignment.stepwise=true", "partner.task=sameobject"],
            ["partner.task=sameobject", "vocabulary of multiobject", "stepwise"],
        ),
        (["alignment.directions=[[0,2]]"], ["alignment.directions=[0,2]", "models 0..1"]),
        (["alignment.cl_directions=[[2,1]]"], ["alignment.cl_directions=[2,1]", "models 0..1"]),
        (["alignment.cl_eps=-0.5"], ["alignment.cl_eps=-0.5", "non-negative"]),
        (["partner.variables=[count,phase]"], ["partner.variables=[count,phase]", "as many variables"]),
        (
            ["partner.causal_model=upup", "partner.variables=[count]"],
            ["partner.variables=count", "demo_count, resp_count"],
        ),
        (["partner.model=gpt"], ["partner.model=gpt", "one of gru, hf, lm, lstm, rnn, transformer"]),
        (["partner.seed=-1"], ["partner.seed=-1", "non-negative integer"]),
    ],
)
def test_bad_mas_settings(args, fragments, in_command_env) -> None:
    assert_refused("run_alignment.py", "alignment=mas", *args, *TINY_TRAINING, says=fragments)
    assert not in_command_env.exists() or not any(in_command_env.rglob("model.pt"))  # nothing trained


def test_partner_settings_need_a_two_model_alignment(in_command_env) -> None:
    assert_refused(
        "run_alignment.py",
        "partner.model=lstm",
        *TINY_TRAINING,
        says=["partner.model=lstm", "null with alignment=das"],
    )


# -- the pieces ---------------------------------------------------------------------------------------------


class StateModel(SequenceModel):
    """A stand-in model whose activations are the Up-Down variables themselves: (count, phase)."""

    d_model, n_layers = 2, 1

    def __init__(self, task) -> None:
        super().__init__()
        self.causal = causal_model_for(task, "updown")

    @property
    def sites(self) -> dict[str, int]:
        return {"embedding": 2, "layer.0": 2}

    def activations(self, ids, site):
        post = self.causal.trajectory(ids).post
        return torch.stack([post["count"], post["phase"]], -1).float()


def test_latent_targets_are_natural_vectors_in_the_counterfactual_state() -> None:
    task = NumericTask(objects="multi")
    causal = causal_model_for(task, "updown")
    pairs = make_pairs(task, causal, "count", 500, generator(0, "pairs"))
    vectors, found = latent_targets(pairs, task, causal, StateModel(task), "layer.0", generator(0, "cl"))
    assert found.float().mean() > 0.95
    expected = torch.stack([pairs.state["count"], pairs.state["phase"]], -1).float()
    torch.testing.assert_close(vectors[found], expected[found])
    assert histogram_divergence(expected, expected) == pytest.approx(0.0)
    assert histogram_divergence(expected, expected + 5) > 0.1


def test_targets_sharing_a_model_run_stacked_like_alone() -> None:
    """Tracks into the same model run as one stacked batch; results equal separate runs."""
    task = NumericTask(objects="multi")
    causal = causal_model_for(task, "updown")
    L.seed_everything(0, verbose=False)
    models = [GRU(task.vocab.size, d_model=16).eval(), GRU(task.vocab.size, d_model=16).eval()]
    tracks = [Track(s, t, "count") for s in range(2) for t in range(2)]
    batches = {}
    for k, track in enumerate(tracks):
        pairs = make_pairs(task, causal, "count", 40 + 7 * k, generator(k, "pairs"))
        batches[track.name] = select(
            pair_tensors(pairs, models[track.source], "layer.0"), torch.arange(40 + 7 * k)
        )
    interchange = Interchange([Rotation(16), Rotation(16)], FixedLayout(["count"], [4], 16, 16))
    for p in interchange.parameters():
        p.data.add_(torch.randn_like(p) * 0.3)
    module = AlignmentModule(models, ["layer.0", "layer.0"], interchange, tracks)
    together = module.run_tracks(tracks, batches)
    for track, out in zip(tracks, together, strict=True):
        alone = module.run(track, batches[track.name])
        assert torch.equal(out.preds, alone.preds) and torch.equal(out.task, alone.task)
        torch.testing.assert_close(out.loss, alone.loss, rtol=1e-5, atol=1e-6)


def test_stitching_keeps_nothing_of_the_target() -> None:
    interchange = Interchange([Rotation(8), Rotation(6)], FixedLayout(["full"], [6], 8, 6), keep_target=False)
    h_target, h_source = torch.randn(5, 6), torch.randn(5, 8)
    one = interchange(h_target, h_source, "full", target=1, source=0)
    two = interchange(torch.randn(5, 6), h_source, "full", target=1, source=0)
    torch.testing.assert_close(one, two)
    kept = Interchange([Rotation(6)], FixedLayout(["count"], [2], 6, 6))
    torch.testing.assert_close(kept(h_target, h_target, "count"), h_target)  # a self-swap is the identity


def test_similarity_measures_on_known_cases() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 10, generator=g, dtype=torch.double)
    rotation = torch.linalg.qr(torch.randn(10, 10, generator=g, dtype=torch.double))[0]
    same = pair_measures(x, x @ rotation)  # a rotation changes no distance and no linear kernel
    for key in ("cka_linear", "cka_rbf", "rsa_l2_spearman", "rsa_l2_pearson"):
        assert same[key] == pytest.approx(1.0, abs=1e-6), key
    unrelated = pair_measures(x, torch.randn(200, 10, generator=g, dtype=torch.double))
    assert unrelated["cka_linear"] < 0.3 and abs(unrelated["rsa_l2_pearson"]) < 0.2
    assert cka(x @ x.T, x @ x.T) == pytest.approx(1.0)
    assert correlation(torch.arange(10.0), torch.arange(10.0) ** 3, "spearman") == pytest.approx(1.0)
    counts = torch.randint(0, 20, (300,), generator=g)
    features = torch.stack([counts.double() * 0.7 + 1, torch.randn(300, generator=g, dtype=torch.double)], 1)
    assert probe_accuracy(features, counts, torch.arange(300)) == pytest.approx(1.0)
    assert probe_accuracy(features[:, 1:], counts, torch.arange(300)) < 0.3


def test_matched_scales_cancel_within_a_model_and_round_trip() -> None:
    import torch

    from alignsearch.alignment import FixedLayout, Interchange, Rotation

    torch.manual_seed(0)
    states = torch.randn(500, 6) * torch.tensor([0.5, 1, 2, 4, 8, 16]) + 3
    plain = Interchange([Rotation(6)], FixedLayout(["count"], [2], 6, 6), match_scales=True)
    plain.fit_standardizers([states])
    assert plain.standardizers[0](states).std(0) == pytest.approx(torch.ones(6), abs=1e-4)
    scaled = Interchange([Rotation(6)], FixedLayout(["count"], [2], 6, 6), match_scales=True)
    scaled.load_state_dict(plain.state_dict())
    with torch.no_grad():
        scaled.log_scales.normal_()
        scaled.offsets.normal_()
    h_t, h_s = states[:8], states[8:16]
    with torch.no_grad():  # one model: a scale and offset per aligned coordinate act alike on base and source
        assert torch.allclose(scaled(h_t, h_s, "count"), plain(h_t, h_s, "count"), atol=1e-4)
        assert torch.allclose(scaled.decode(scaled.code(h_t, 0), 0), h_t, atol=1e-4)
        assert not torch.allclose(scaled.code(h_t, 0), plain.code(h_t, 0), atol=1e-2)


def test_the_mas_family_matches_scales_and_das_does_not(tmp_path) -> None:
    from tests.helpers import compose_config

    for name in ("mas", "unimas", "clmas", "stitch", "latent_stitch"):
        assert compose_config("run_alignment", [f"alignment={name}"]).alignment.match_scales is True
    assert compose_config("run_alignment", ["alignment=das"]).alignment.match_scales is False


def test_a_saved_mas_alignment_keeps_its_scales(tiny_zoo, tmp_path) -> None:
    import shutil

    import torch

    from alignsearch import api
    from tests.helpers import TINY_ALIGNMENT, TINY_TRAINING

    zoo = shutil.copytree(tiny_zoo, tmp_path / "zoo")
    models = [api.model(zoo_dir=zoo, seed=s, overrides=TINY_TRAINING) for s in (0, 1)]
    result = api.align(models, alignment="mas", n_units=8, overrides=TINY_ALIGNMENT, out_dir=tmp_path / "run")
    saved = api.load_alignment(tmp_path / "run" / "alignment.pt")
    assert saved.interchange.match_scales
    assert not torch.equal(
        saved.interchange.standardizers[1].std, torch.ones_like(saved.interchange.standardizers[1].std)
    )
    # the rebuilt alignment (statistics and learned scales read back) scores new pairs as the run's does
    pairs = api.pairs(models[0], n=128, seed=1)
    for source, target in ((0, 1), (1, 0)):
        kept = api.iia(result, models, pairs, source=source, target=target)
        again = api.iia(saved, models, pairs, source=source, target=target)
        assert again["iia"] == pytest.approx(kept["iia"]) and again["token_iia"] == pytest.approx(
            kept["token_iia"]
        )
