"""Models trained elsewhere (``api.own_model``), and the ``untrained`` control of the Python API: it is
the aligned model's own architecture, as it was before training."""

from __future__ import annotations

import pytest
import torch

from alignsearch import api, zoo
from alignsearch.errors import ConfigError
from alignsearch.models import GRU, SequenceModel
from alignsearch.search.records import ControlScore
from tests.helpers import TINY_ALIGNMENT, TINY_TRAINING, run_pairs

QUICK = {"max_steps": 20, "val_every": 10}


@pytest.fixture(scope="module")
def tiny_gru(tiny_zoo) -> zoo.ZooEntry:
    return api.model(zoo_dir=tiny_zoo, overrides=TINY_TRAINING)


def brought(entry: zoo.ZooEntry) -> GRU:
    """The zoo GRU's weights in a model built outside the zoo (as if trained elsewhere)."""
    model = GRU(vocab_size=entry.task.vocab.size, d_model=32)
    model.load_state_dict(entry.model.state_dict())
    return model


def test_a_model_trained_elsewhere_aligns_like_the_same_weights_from_the_zoo(tiny_gru, tmp_path) -> None:
    mine = api.own_model(brought(tiny_gru), "multiobject", name="my_gru")
    assert mine.info["origin"] == api.OWN and mine.info["model"] == "my_gru"
    assert mine.metrics["val_trial_acc"] == pytest.approx(
        api.own_model(tiny_gru.model, "multiobject").metrics["val_trial_acc"]
    )
    assert mine.weights_sha256 == api.weights_digest(tiny_gru.model)
    ours = api.align(tiny_gru, n_units=8, overrides=TINY_ALIGNMENT, **QUICK)
    theirs = api.align(mine, n_units=8, overrides=TINY_ALIGNMENT, **QUICK)
    (record,) = theirs.records
    assert record.source == record.target == f"multiobject/my_gru/sha256-{mine.weights_sha256[:12]}"
    assert (record.iia, record.iia_test) == (ours.records[0].iia, ours.records[0].iia_test)

    other = brought(tiny_gru)
    with torch.no_grad():
        other.embedding.weight.add_(0.01)  # other weights: another model
    assert api.own_model(other, name="my_gru").path != mine.path


def test_what_cannot_be_a_task_model_is_refused(tiny_gru) -> None:
    with pytest.raises(
        ConfigError, match=r"^model=linear is not allowed: expected a model that maps token ids"
    ):
        api.own_model(torch.nn.Linear(4, 4))  # reads no token ids: found by running it once
    with pytest.raises(ConfigError, match=r"^model=str is not allowed: expected "):
        api.own_model("gru")
    wrong_vocabulary = GRU(vocab_size=tiny_gru.task.vocab.size + 1, d_model=32)
    with pytest.raises(
        ConfigError, match=r"expected logits over the 8 tokens of task multiobject .*it gives 9"
    ):
        api.own_model(wrong_vocabulary)


def test_the_untrained_control_is_the_models_own_architecture_before_training(
    zoo, tmp_path, monkeypatch
) -> None:
    """An LSTM's control is that LSTM as the zoo initialised it (not the default model of the config)."""
    lstm = api.model("lstm", zoo_dir=zoo, overrides=TINY_TRAINING)
    given = {}

    def controls(plan, models, names, work, *, seed, hardware, untrained, trained=None, verbose=True):
        given["models"] = untrained()
        return {"untrained": {"0>0/count": ControlScore(0.0, None)}}

    from alignsearch.search import run

    monkeypatch.setattr(run, "run_controls", controls)
    api.align(lstm, n_units=8, controls=["untrained"], overrides=TINY_ALIGNMENT, **QUICK)
    (initial,) = given["models"]
    assert type(initial) is type(lstm.model)
    for key, value in zoo_request(zoo, "lstm").model.state_dict().items():
        assert torch.equal(initial.state_dict()[key], value), key
    assert not torch.equal(initial.embedding.weight, lstm.model.embedding.weight)  # before training


def zoo_request(root, model: str) -> zoo.ModelRequest:
    from alignsearch.cli.checks import model_request

    cfg = api.config("train_task_model", [f"model={model}", f"paths.zoo_dir={root}", *TINY_TRAINING])
    return model_request(cfg)


def test_a_brought_model_is_reinitialised_for_its_untrained_control(tiny_gru) -> None:
    model = brought(tiny_gru)
    twin = zoo.reinitialised(model, seed=3)
    for (name, before), after in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert not torch.equal(before, after), name
    assert torch.equal(zoo.reinitialised(model, seed=3).embedding.weight, twin.embedding.weight)  # seeded

    class Scaled(SequenceModel):
        """A weight outside any module with reset_parameters: a control would keep it trained."""

        d_model, n_layers = 8, 0

        def __init__(self) -> None:
            super().__init__()
            self.embed, self.head = torch.nn.Embedding(8, 8), torch.nn.Linear(8, 8)
            self.scale = torch.nn.Parameter(torch.full((8,), 2.0))

        def encode(self, ids, intervention=None):
            return self.embed(ids) * self.scale

        def readout(self, hidden):
            return self.head(hidden)

    with pytest.raises(ConfigError, match=r"^controls=untrained is not allowed: .*\(scale are not\)"):
        zoo.reinitialised(Scaled(), seed=0)


def test_a_random_model_is_not_its_own_untrained_control() -> None:
    """A model that is itself a random draw under ``torch.manual_seed(0)`` (a quick check's, a
    benchmark's) was drawn again weight for weight under the run's seed 0, and then refused as a model
    "whose modules have no reset_parameters()". The copy is drawn from a seed derived from the run's."""
    from alignsearch.models import GRU

    torch.manual_seed(0)
    model = GRU(vocab_size=12, d_model=16)
    twin = zoo.reinitialised(model, seed=0)
    for (name, before), after in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert not torch.equal(before, after), name


def test_a_saved_alignment_says_which_models_and_variables_it_does_not_fit(tiny_gru) -> None:
    result = api.align(tiny_gru, n_units=4, overrides=TINY_ALIGNMENT, **QUICK)
    pairs = api.pairs(tiny_gru.task, "updown", "count", n=50)
    again = api.iia(result, [tiny_gru], run_pairs(tiny_gru.task))  # the run's validation pairs, drawn again
    assert (again["iia"], again["token_iia"]) == (result.records[0].iia, result.records[0].token_iia)
    narrow = api.own_model(GRU(vocab_size=tiny_gru.task.vocab.size, d_model=16), name="narrow")
    with pytest.raises(
        ConfigError,
        match=r"^models\[0\]=multiobject/narrow/sha256-\w+ is not allowed: expected a model of width 32 at "
        r"layer\.0, as multiobject/gru/seed0-d_model32\S*: it has 16$",
    ):
        api.iia(result, [narrow], pairs)
    with pytest.raises(ConfigError, match=r"^variable=phase is not allowed: .*variables: count$"):
        api.iia(result, [tiny_gru], api.pairs(tiny_gru.task, "updown", "phase", n=50))
    with pytest.raises(ConfigError, match=r"^models=2 is not allowed: expected 1 model\(s\), as trained"):
        api.iia(result, [tiny_gru, tiny_gru], pairs)
    with pytest.raises(ConfigError, match=r"^target=1 is not allowed: expected a model index below 1$"):
        api.iia(result, [tiny_gru], pairs, target=1)
