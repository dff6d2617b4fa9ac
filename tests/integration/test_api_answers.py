"""The API gives no silently wrong answers (issue 28, items 11-13): every override counts or is refused,
seeds, ``progress``, ``stop_at=None`` and ``dtype`` are what they say; ``api.iia`` scores only pairs of
the alignment's causal model, variable and task settings; a folder's results are never taken for another
model in memory (another class, attribute or non-persistent buffer with the same weights)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from alignsearch import api
from alignsearch.components import build_task
from alignsearch.search.results import RunStatus
from tests.helpers import QUICK_API, TINY_ALIGNMENT, TINY_TRAINING, refused

ALREADY_DONE, DONE = RunStatus.ALREADY_DONE, RunStatus.DONE
QUICK = QUICK_API
"""Tiny alignments (TINY_ALIGNMENT says the same steps): numbers not meant to be good."""


def task(*overrides: str):
    return build_task(api.config("train_task_model", list(overrides)).task)


# -- 11: overrides, seeds, progress, dtype ----------------------------------------------------------------
SAYS_OTHERWISE = "an override may repeat it, not change it"


@pytest.mark.parametrize(
    ("override", "kwargs", "says"),
    [
        ("alignment.variables=[phase]", {}, "variables=('count',); {}): give variables=['phase'] instead"),
        ("alignment.causal_model=upup", {}, "causal_model='updown'; {}): give causal_model='upup' instead"),
        ("n_units=8", {}, "n_units=4; {}): give n_units=8 instead"),
        ("seed=3", {}, "seed=0; {}): give seed=3 instead"),
        ("site=embed", {}, "site=None; {}): give site='embed' instead"),
        ("layer=5", {"site": "rnn"}, "layer=0; {}): give layer=5 instead"),
        ("position=-2", {}, "position=None; {}): give position='-2' instead"),
        ("alignment.max_steps=30", {}, "max_steps=20; {}): give max_steps=30 instead"),
        ("alignment=mas", {}, "alignment='das'; {}): give alignment='mas' instead"),
        ("hardware.progress_bar=true", {}, "progress=False; {}): give progress=True instead"),
    ],
)
def test_an_override_of_what_an_argument_sets_is_refused_naming_the_argument(
    gru, override, kwargs, says
) -> None:
    argument = says.split("=")[0]
    message = refused(api.align, gru, overrides=[*TINY_ALIGNMENT, override], **{**QUICK, **kwargs})
    assert message == (
        f"overrides={override!r} is not allowed: expected no override of what the argument {argument} sets "
        f"({says.format(SAYS_OTHERWISE)}"
    )


@pytest.mark.parametrize(
    "override",
    ["model.d_model=64", "training.max_steps=5", "task.max_count=9", "snapshot=20", "partner.seed=5",
     "logger=wandb", "paths.zoo_dir=elsewhere", "auto_train=false"],
)  # fmt: skip
def test_an_override_align_does_not_read_is_refused(gru, override) -> None:
    assert refused(api.align, gru, overrides=[override], **QUICK) == (
        f"overrides={override!r} is not allowed: expected overrides of what api.align reads: alignment, "
        "partner.layer, partner.site, partner.causal_model, partner.variables, hardware, min_task_accuracy "
        "(the models come with their task and training; a partner is the second of models)"
    )


def test_the_output_folder_and_a_scans_sites_are_arguments_not_overrides(gru) -> None:
    assert refused(api.align, gru, overrides=["paths.output_dir=x"], **QUICK) == (
        "overrides='paths.output_dir=x' is not allowed: expected no override of paths.output_dir: give out_dir= "
        "instead"
    )
    assert refused(api.scan, gru, overrides=["layer=1"], progress=False) == (
        "overrides='layer=1' is not allowed: expected no override of layer: a scan's sites= and positions= say "
        "where it aligns"
    )
    assert refused(api.scan, gru, overrides=["alignment.causal_model=upup"], progress=False).endswith(
        "give causal_model='upup' instead"
    )


def test_an_override_that_repeats_an_argument_counts_as_it(gru, das) -> None:
    repeated = ["seed=0", "n_units=4", "alignment.variables=[count]", "alignment=das", "position=null"]
    again = api.align(gru, overrides=[*TINY_ALIGNMENT, *repeated], **QUICK)
    assert again.results.identity == das.results.identity
    assert [r.iia for r in again.records] == [r.iia for r in das.records]
    # an override of a key no argument sets counts: partner.* and alignment.* (here the learning rate)
    other = api.align(gru, overrides=[*TINY_ALIGNMENT, "alignment.lr=0.5"], **QUICK)
    assert other.plan.settings.lr == 0.5 and das.plan.settings.lr != 0.5


def test_model_and_own_model_refuse_overrides_that_would_not_count(gru, tiny_zoo) -> None:
    assert refused(api.model, zoo_dir=tiny_zoo, overrides=[*TINY_TRAINING, "seed=3"]) == (
        f"overrides='seed=3' is not allowed: expected no override of what the argument seed sets "
        f"(seed=0; {SAYS_OTHERWISE}): give seed=3 instead"
    )
    assert refused(api.model, zoo_dir=tiny_zoo, overrides=["model=lstm"]).endswith(
        "give model='lstm' instead"
    )
    assert refused(api.model, overrides=["paths.zoo_dir=elsewhere"]).endswith("give zoo_dir= instead")
    assert refused(api.own_model, gru.model, overrides=["model.d_model=64"]) == (
        "overrides='model.d_model=64' is not allowed: expected overrides of what api.own_model reads: task "
        "(the model is given: only its task's settings are read)"
    )
    assert refused(api.own_model, gru.model, overrides=["task=sameobject"]).endswith(
        "give task='sameobject' instead"
    )


def test_a_seed_beyond_what_the_generators_take_is_one_line(gru) -> None:
    beyond = "seed=1180591620717411303424 is not allowed: expected a non-negative integer up to 4294967295 (a seed)"
    assert refused(api.align, gru, seed=2**70, overrides=TINY_ALIGNMENT, **QUICK) == beyond
    assert refused(api.pairs, gru, seed=2**70) == beyond
    assert refused(api.model, seed=2**70) == beyond
    assert refused(api.align, gru, seed=2**32, overrides=TINY_ALIGNMENT, **QUICK).startswith(
        "seed=4294967296 "
    )


def test_progress_is_true_or_false(gru) -> None:
    quick = {k: v for k, v in QUICK.items() if k != "progress"}
    assert refused(api.align, gru, progress="no", overrides=TINY_ALIGNMENT, **quick) == (
        "progress='no' is a str: expected true or false"
    )
    assert refused(api.scan, gru, progress=1) == "progress=1 is an int: expected true or false"


def test_align_reports_progress_unless_asked_not_to(gru, capsys) -> None:
    api.align(
        gru,
        n_units=4,
        overrides=[*TINY_ALIGNMENT, "hardware.progress_every=0.001"],
        max_steps=20,
        val_every=10,
    )
    out = capsys.readouterr().out
    assert "step 20/20 (100%)" in out  # output captured: not a terminal, so lines
    api.align(gru, n_units=4, progress=False, overrides=TINY_ALIGNMENT, max_steps=20, val_every=10)
    assert "step " not in capsys.readouterr().out


def test_stop_at_none_trains_exactly_max_steps(gru) -> None:
    impatient = {"patience": 0, "min_delta": 1.0, "max_steps": 30, "val_every": 10}  # no step improves
    tiny = [o for o in TINY_ALIGNMENT if not o.startswith("alignment.max_steps=")]  # max_steps says 30
    early = api.align(gru, n_units=4, overrides=tiny, **impatient)
    exact = api.align(gru, n_units=4, overrides=tiny, stop_at=None, **impatient)
    assert early.steps < 30 and exact.steps == 30


def test_a_dtype_other_than_a_model_in_memorys_own_is_refused_and_the_model_left_as_it_is() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16, n_positions=16)
    hf = transformers.GPT2LMHeadModel(config)
    assert refused(api.language_model, hf, None, dtype="float16") == (
        "dtype='float16' is not allowed: expected the model's own dtype, float32 (a model in memory is not "
        "cast: pass model.to(torch.float16), or leave dtype out)"
    )
    assert {p.dtype for p in hf.parameters()} == {torch.float32}
    assert refused(api.language_model, hf, None, dtype="float64") == (
        "dtype='float64' is not allowed: expected one of float32, bfloat16, float16, or None"
    )


# -- 12: pairs of the alignment's causal model, variable and task ------------------------------------------
def test_pairs_of_another_variable_causal_model_or_task_are_refused(gru, das) -> None:
    trained = "the causal model the alignment was trained on for model 0"
    for variable in ("phase", "null"):
        other = api.pairs(gru, "updown", variable, n=40)
        assert refused(api.iia, das, [gru], other, variable="count") == (
            f"pairs.variable={variable} is not allowed: expected count, the variable asked (variable='count') "
            "in model 0: api.pairs(model, 'updown', 'count')"
        )
    upup = api.pairs(gru, "upup", "demo_count", n=40)
    assert refused(api.iia, das, [gru], upup, variable="count") == (
        f"pairs.causal_model=upup is not allowed: expected updown, {trained} ({das.records[0].source}): "
        "api.pairs(model, 'updown', ...)"
    )
    assert refused(api.iia, das, [gru], upup).startswith("pairs.causal_model=upup is not allowed")
    wider = api.pairs(task("task.max_count=30"), "updown", "count", n=40)
    assert refused(api.iia, das, [gru], wider) == (
        f"pairs.task.max_count=30 is not allowed: expected 20, as the task of the target model "
        f"{das.records[0].source} (multiobject): api.pairs(model, ...) makes pairs of a model's own task"
    )
    narrower = api.pairs(task("task.max_count=9", "task.hold_outs=[4]"), "updown", "count", n=40)
    assert refused(api.iia, das, [gru], narrower) == (
        "pairs.task.hold_outs=[4] is not allowed: expected [4,9,14,17], as the task of the target model "
        f"{das.records[0].source} (multiobject): api.pairs(model, ...) makes pairs of a model's own task"
    )
    # the pairs asked for are scored, with the variable named or not, as the run scored them
    fitting = api.pairs(gru, "updown", "count", n=40, seed=3)
    assert api.iia(das, [gru], fitting, variable="count") == api.iia(das, [gru], fitting)


# -- 13: a model in memory is what defines it, not only its weights ----------------------------------------
class Weights(nn.Module):
    """The tiny zoo GRU's weights in a model written without alignsearch (site ``rnn``)."""

    def __init__(self, gru: nn.Module) -> None:
        super().__init__()
        d_model, vocab = gru.d_model, gru.embedding.num_embeddings
        self.embedding = nn.Embedding(vocab, d_model)
        self.rnn = nn.GRU(d_model, d_model, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Dropout(0.0), nn.Linear(4 * d_model, vocab)
        )
        state = {k.replace("layers.0.", "rnn."): v for k, v in gru.state_dict().items()}
        self.load_state_dict(state)


def scores(result: api.AlignmentResult) -> list[tuple[float, float]]:
    """Each record's IIA and token IIA (the tiny GRU's IIA is often 0; its token IIA is not)."""
    return [(r.iia, r.token_iia) for r in result.records]


def _align(net: nn.Module, out_dir) -> api.AlignmentResult:
    return api.align(net, task="multiobject", site="rnn", out_dir=out_dir, overrides=TINY_ALIGNMENT, **QUICK)


def test_a_class_defined_again_with_another_forward_is_another_model(gru, tmp_path) -> None:
    class Net(Weights):
        def forward(self, ids):
            return self.head(self.rnn(self.embedding(ids))[0])

    first = _align(Net(gru.model), tmp_path / "run")

    class Net(Weights):  # noqa: F811 - the same name and weights, another forward
        def forward(self, ids):
            return -self.head(self.rnn(self.embedding(ids))[0])

    second = _align(Net(gru.model), tmp_path / "run")
    fresh = _align(Net(gru.model), tmp_path / "fresh")
    assert first.status == DONE and second.status == DONE  # not "already done"
    assert first.records[0].source == second.records[0].source  # the same name: the same weights
    assert scores(second) == scores(fresh) and scores(second) != scores(first)
    assert (tmp_path / "run" / "superseded" / "1" / "results.json").is_file()


def test_another_attribute_or_non_persistent_buffer_is_another_model(gru, tmp_path, capsys) -> None:
    class Scaled(Weights):
        def __init__(self, gru: nn.Module) -> None:
            super().__init__(gru)
            self.scale = 1.0
            self.register_buffer("sign", torch.ones(()), persistent=False)
            self.calls = 0  # changed by every forward: the model's own bookkeeping, not its definition

        def forward(self, ids):
            self.calls += 1
            return self.head(self.rnn(self.embedding(ids))[0]) * self.scale * self.sign

    net = Scaled(gru.model)
    first = _align(net, tmp_path / "run")
    assert _align(net, tmp_path / "run").status == ALREADY_DONE  # nothing changed (but its call counter)
    net.scale = -1.0
    scaled = _align(net, tmp_path / "run")
    assert scaled.status == DONE and scores(scaled) != scores(first)
    assert "with the same weights as" in capsys.readouterr().out  # said even though progress=False
    net.scale = 1.0
    assert scores(_align(net, tmp_path / "run")) == scores(first)
    net.sign.fill_(-1.0)
    signed = _align(net, tmp_path / "run")
    assert signed.status == DONE and scores(signed) == scores(scaled)


HIDDEN = """
class Hidden(Weights):
    def forward(self, ids):
        return self.head(self.rnn(self.embedding(ids))[0])
"""


def _hidden_class() -> type:
    """A class whose source cannot be read (as made by ``exec``), made anew at each call (a cell run
    again, or another process)."""
    namespace = {"Weights": Weights}
    exec(compile(HIDDEN, "<a cell without source>", "exec"), namespace)
    return namespace["Hidden"]


def test_a_model_whose_code_cannot_be_read_runs_again_saying_it_cannot_tell(gru, tmp_path, capsys) -> None:
    net = _hidden_class()(gru.model)
    first = _align(net, tmp_path / "run")
    assert _align(net, tmp_path / "run").status == ALREADY_DONE  # the very same objects, in this process
    capsys.readouterr()
    again = _align(_hidden_class()(gru.model), tmp_path / "run")
    assert again.status == DONE and scores(again) == scores(first)
    out = capsys.readouterr().out
    name = first.records[0].source
    assert (
        f"it cannot tell whether {name} is the same model, as the source of its code (Hidden.forward)" in out
    )
    assert "moved them to" in out and "running again" in out


def test_a_zoo_models_identity_is_its_weights_file(gru, das) -> None:
    (model,) = das.results.identity["models"]
    assert model == {"name": das.records[0].source, "weights_sha256": gru.weights_sha256}
