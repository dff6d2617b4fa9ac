"""The divergence of interventions from a model's natural states, checked against known answers, and
carried by every record (task models, MAS directions, language models, the top layer where there is one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignsearch import api
from alignsearch.models import Transformer
from alignsearch.search.divergence import divergence, scaled_emd, wasserstein_1d
from alignsearch.seeding import generator
from tests.helpers import TINY_ALIGNMENT

QUICK = {"max_steps": 20, "val_every": 10}


def reference_w1(a: np.ndarray, b: np.ndarray) -> float:
    """The 1-D Wasserstein distance as the integral of |F_a - F_b| over the merged support."""
    values = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), values[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), values[:-1], side="right") / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(values)))


@pytest.mark.parametrize(("n", "m"), [(50, 50), (37, 91), (1, 5)])
def test_wasserstein_matches_the_integral_of_the_cdfs(n, m) -> None:
    rng = np.random.default_rng(n * 100 + m)
    a, b = rng.normal(size=(n, 3)), rng.normal(1.0, 2.0, size=(m, 3))
    ours = wasserstein_1d(torch.tensor(a), torch.tensor(b))
    expected = [reference_w1(a[:, j], b[:, j]) for j in range(3)]
    assert ours.tolist() == pytest.approx(expected, rel=1e-5)


def test_the_measure_is_symmetric_and_zero_for_identical_sets() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, 5, generator=g), torch.randn(60, 5, generator=g) * 3
    assert torch.allclose(wasserstein_1d(a, b), wasserstein_1d(b, a))
    assert wasserstein_1d(a, a).abs().max() == 0
    spread = a.std(0)
    assert scaled_emd(a, a[torch.randperm(40, generator=g)], spread) == 0


def natural_states(n: int = 4000, d: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, d, generator=g) @ torch.randn(d, d, generator=g) + 2.0


def test_swapping_a_subspace_between_natural_states_stays_at_the_floor() -> None:
    natural = natural_states()
    swapped = natural.clone()
    swapped[:, :4] = natural[torch.randperm(len(natural), generator=torch.Generator().manual_seed(2)), :4]
    measured = divergence(natural, swapped, generator(0, "test"))
    assert measured["divergence"] == pytest.approx(measured["divergence_floor"], abs=0.03)
    assert measured["divergence_floor"] < 0.1


def test_pushing_the_intervened_dimensions_far_off_is_a_large_divergence() -> None:
    natural = natural_states()
    pushed = natural.clone()
    pushed[:, :4] += 10 * natural[:, :4].std(0)
    measured = divergence(natural, pushed, generator(0, "test"))
    assert measured["divergence"] > 4.5 > 0.1 > measured["divergence_floor"]  # 4 of 8 dimensions: about 5


def test_das_records_carry_the_divergence_and_its_floor(tiny_zoo) -> None:
    from tests.helpers import TINY_TRAINING

    gru = api.model(zoo_dir=tiny_zoo, overrides=TINY_TRAINING)
    (record,) = api.align(gru, n_units=8, overrides=TINY_ALIGNMENT, **QUICK).records
    assert record.divergence > record.divergence_floor > 0
    assert record.divergence_top is None  # layer.0 is the GRU's only layer: nothing above it
    assert "divergence" in api.align(gru, n_units=8, overrides=TINY_ALIGNMENT, **QUICK).table()


def test_a_site_below_the_top_is_measured_at_the_top_too() -> None:
    from alignsearch.components import build_task

    task = build_task(api.config("train_task_model", []).task)
    model = Transformer(task.vocab.size, d_model=32, n_layers=2)
    result = api.align(model, task="multiobject", layer=0, n_units=8, overrides=TINY_ALIGNMENT, **QUICK)
    (record,) = result.records
    assert record.divergence is not None and record.divergence_top is not None
    assert record.divergence_top_floor is not None and record.divergence_top_floor < 0.5


def test_mas_directions_and_language_models_carry_it(tiny_zoo, toy_lms, tmp_path) -> None:
    import shutil

    from alignsearch.text.toy import count_pair_rows
    from tests.helpers import TINY_TRAINING

    zoo = shutil.copytree(tiny_zoo, tmp_path / "zoo")
    models = [api.model(zoo_dir=zoo, seed=s, overrides=TINY_TRAINING) for s in (0, 1)]
    mas = api.align(models, alignment="mas", n_units=8, overrides=TINY_ALIGNMENT, **QUICK)
    assert all(r.divergence is not None and r.divergence_floor is not None for r in mas.records)
    lm = api.language_model(toy_lms["gpt2"])
    pairs = api.text_pairs(count_pair_rows(200, seed=0), lm.tokenizer)
    text = api.align(lm, data=pairs, variables=["count"], layer=0, n_units=8, **QUICK)
    (record,) = text.records
    assert record.divergence is not None and record.divergence_top is not None  # GPT-2: blocks above


# -- the mitigation: the counterfactual-latent loss as a setting of any alignment --------------------------------
def planned(zoo_dir, *overrides: str):
    """The plan of a run on the tiny zoo's GRU (twice for two-model alignments: the tracks depend on the
    settings only, and the shared zoo gains no entry)."""
    from tests.helpers import TINY_TRAINING, compose_config, plan_of

    cfg = compose_config(
        "run_alignment", [f"paths.zoo_dir={zoo_dir}", *TINY_TRAINING, "min_task_accuracy=0", *overrides]
    )
    return plan_of(cfg, [api.model(zoo_dir=zoo_dir, overrides=TINY_TRAINING)] * cfg.alignment.models)


def test_cl_weight_adds_the_latent_loss_to_every_behavioural_direction(tiny_zoo) -> None:
    off = planned(tiny_zoo)
    assert not any(t.latent for t in off.tracks())
    das = planned(tiny_zoo, "alignment.cl_weight=0.25")
    assert [(t.behavioural, t.latent, t.latent_weight) for t in das.tracks()] == [(True, True, 0.25)]
    mas = planned(tiny_zoo, "alignment=mas", "alignment.cl_weight=0.5")
    assert len(mas.tracks()) == 4 and all(t.loss == "both" and t.latent_weight == 0.5 for t in mas.tracks())
    clmas = planned(tiny_zoo, "alignment=clmas", "alignment.cl_weight=0.5")
    weights = {t.direction: (t.loss, t.latent_weight) for t in clmas.tracks()}
    # behavioural directions gain the CL loss at cl_weight; the CL-only directions keep cl_eps
    assert weights == {
        "0>0": ("both", 0.5),
        "1>0": ("both", 0.5),
        "0>1": ("latent", 0.85),
        "1>1": ("latent", 0.85),
    }


def test_the_latent_loss_on_a_mask_is_the_loss_on_the_selected_features() -> None:
    from alignsearch.search.latent_targets import latent_loss

    g = generator(0, "test")
    h, t = torch.randn(64, 10, generator=g), torch.randn(64, 10, generator=g)
    found = torch.rand(64, generator=g) > 0.2
    mask = torch.zeros(10)
    mask[2:5] = 1
    assert latent_loss(h, t, found, mask).item() == pytest.approx(
        latent_loss(h[:, 2:5], t[:, 2:5], found).item()
    )


def test_the_subspace_form_ignores_the_target_outside_the_aligned_subspace() -> None:
    from alignsearch.alignment import FixedLayout, Interchange, Rotation
    from alignsearch.search.module import AlignmentModule, TrackOutput
    from alignsearch.search.pairs import Track

    torch.manual_seed(0)
    rotation = Rotation(6)
    interchange = Interchange([rotation], FixedLayout(["count"], [2], 6, 6))
    track = Track(0, 0, "count", latent=True)
    module = AlignmentModule(
        [Transformer(8, d_model=6)], ["layer.0"], interchange, [track], cl_space="subspace"
    )
    g = generator(1, "test")
    intervened, natural = torch.randn(32, 6, generator=g), torch.randn(32, 6, generator=g)
    found = torch.ones(32, dtype=torch.bool)
    with torch.no_grad():
        z = rotation(natural)
        z_moved = z.clone()
        z_moved[:, 2:] += 5.0  # the natural target changed outside the count's block only
        moved = rotation.inverse(z_moved)
        inside = z.clone()
        inside[:, :2] += 5.0
        off_block = rotation.inverse(inside)

    def loss(target):
        out = TrackOutput(torch.zeros(()), None, None, None, intervened=intervened, cl=target, cl_found=found)
        return module.subspace_latent_loss(track, out).item()

    assert loss(moved) == pytest.approx(loss(natural), abs=1e-5)
    assert loss(off_block) > loss(natural) + 1.0


def test_the_latent_loss_pulls_interventions_towards_natural_states(tiny_zoo) -> None:
    from tests.helpers import TINY_TRAINING

    gru = api.model(zoo_dir=tiny_zoo, overrides=TINY_TRAINING)
    runs = {
        w: api.align(gru, n_units=8, overrides=TINY_ALIGNMENT, cl_weight=w, **QUICK).records[0]
        for w in (0.0, 5.0)
    }
    assert runs[0.0].cl_loss is None and runs[0.0].loss == "behaviour"
    assert runs[5.0].loss == "both" and 0 < runs[5.0].cl_loss < float("inf")
    assert runs[5.0].divergence < runs[0.0].divergence
    subspace = api.align(
        gru, n_units=8, overrides=TINY_ALIGNMENT, cl_weight=5.0, cl_space="subspace", **QUICK
    )
    assert subspace.records[0].cl_loss is not None and subspace.config["cl_space"] == "subspace"


def test_the_mitigation_settings_keep_older_runs_their_identity() -> None:
    from alignsearch.settings import AlignmentSettings

    cfg = api.config("run_alignment", []).alignment
    default = AlignmentSettings.parse(cfg)
    assert {"cl_weight", "cl_space"} <= set(default.not_identity())
    cfg.cl_weight = 0.1
    assert "cl_weight" not in AlignmentSettings.parse(cfg).not_identity()


def test_stepwise_task_pairs_refuse_the_latent_loss(tiny_zoo) -> None:
    from alignsearch.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        planned(tiny_zoo, "alignment.stepwise=true", "alignment.cl_weight=0.5")
    assert (
        str(error.value) == "alignment.cl_weight=0.5 is not allowed: expected 0 with alignment.stepwise=true"
    )
