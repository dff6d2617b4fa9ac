"""Models brought as they are: a plain ``torch.nn.Module`` from ids to logits (``ModuleModel``, sites by module
path), the vocabulary checks made before any forward pass, and a HuggingFace causal LM with its tokenizer
already in memory (``TextLM.from_model``)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from alignsearch import api, zoo
from alignsearch.errors import ConfigError
from alignsearch.models import GRU, Intervention, ModuleModel, as_sequence_model, hooks
from alignsearch.models.base import weights_sha256
from alignsearch.models.vocabulary import check_ids_in_vocab, check_reads_vocab, input_vocab_size
from alignsearch.tasks import NumericTask
from tests.helpers import TinyNet

WIDTH = 16


class WithLogits(TinyNet):
    """The logits in an output object (as HuggingFace models give them)."""

    def forward(self, ids):
        return type("Output", (), {"logits": super().forward(ids)})()


class AsTuple(TinyNet):
    def forward(self, ids):
        return super().forward(ids), "cache"


def ids_batch(vocab: int = 8) -> torch.Tensor:
    return torch.randint(0, vocab, (3, 7), generator=torch.Generator().manual_seed(0))


def zero(h, rows, cols):
    return torch.zeros_like(h)


# -- a plain module -------------------------------------------------------------------------------------------
def test_a_plain_module_gives_its_own_logits_frozen() -> None:
    torch.manual_seed(0)
    net = TinyNet()
    model = as_sequence_model(net)
    assert isinstance(model, ModuleModel) and model.module is net
    assert model.sites == {} and model.name == "tinynet"
    assert model.settings() == {"module": "tests.helpers.TinyNet", "name": "tinynet"}
    assert as_sequence_model(net, name="mine").name == "mine"
    ids = ids_batch()
    torch.testing.assert_close(model(ids), net(ids), rtol=0, atol=0)
    torch.testing.assert_close(model.readout(model.encode(ids)), net(ids), rtol=0, atol=0)
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.train().training and not net.training
    nn.Sequential(model).train()  # a parent in training mode (a LightningModule) leaves it as it is
    assert not any(m.training for m in model.modules())
    for cls in (WithLogits, AsTuple):
        torch.manual_seed(0)
        torch.testing.assert_close(as_sequence_model(cls())(ids), model(ids), rtol=0, atol=0)


def test_sites_are_module_paths_inside_the_wrapped_module() -> None:
    net = TinyNet()
    model = ModuleModel(net, name="tiny")
    ids = ids_batch()
    assert hooks.site_width(model, "rnn") == hooks.site_width(model, "embed") == WIDTH
    torch.testing.assert_close(hooks.site_activations(model, ids, "rnn"), net.rnn(net.embed(ids))[0])
    torch.testing.assert_close(model.activations(ids, "embed"), net.embed(ids))

    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[1, 4] = True
    plain = model(ids)
    for out in (
        hooks.encode(model, ids, Intervention("rnn", mask, zero)),
        model(ids, Intervention("rnn", mask, zero)),
    ):
        assert not torch.allclose(out, plain)
        torch.testing.assert_close(out[1, 4], net.out.bias)  # the read-out of a zero vector
        torch.testing.assert_close(out[~mask], plain[~mask])  # a hook changes the output, not the GRU's state
    shift = torch.zeros(WIDTH, requires_grad=True)  # what an alignment learns: gradients reach it
    model(ids, Intervention("rnn", mask, lambda h, rows, cols: h + shift)).sum().backward()
    assert shift.grad is not None and shift.grad.abs().sum() > 0
    with pytest.raises(
        ConfigError,
        match=r"^site=layer\.0 is not allowed: expected a module path of the "
        r"TinyNet \(it has no named sites; ",
    ):
        hooks.encode(model, ids, Intervention("layer.0", mask, zero))
    with pytest.raises(ConfigError, match=r"^site=embedding is not allowed: .*tiny has no named sites"):
        model.check_site("embedding")
    with pytest.raises(ConfigError, match=r"^site=rnm is not allowed: .*close matches: rnn"):
        model(ids, Intervention("rnm", mask, zero))


def test_what_is_not_a_model_of_ids_to_logits_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^model=str is not allowed: expected a SequenceModel, or a torch"):
        as_sequence_model("gru")
    gru = GRU(vocab_size=8, d_model=16)
    assert as_sequence_model(gru, name="ignored") is gru
    with pytest.raises(ConfigError, match=r"^name=my/gru is not allowed"):
        ModuleModel(TinyNet(), name="my/gru")
    flat = ModuleModel(nn.Embedding(8, 4), name="flat")  # (batch, length, 4): fine, 4 "logits"
    assert flat(ids_batch()).shape == (3, 7, 4)
    pooled = ModuleModel(nn.Sequential(nn.Embedding(8, 4), nn.Flatten()), name="pooled")
    with pytest.raises(
        ConfigError, match=r"^model=pooled is not allowed: .*it gives a tensor of shape \(3, 28\)$"
    ):
        pooled(ids_batch())


def test_copies_state_dicts_and_reinitialisation_reach_the_wrapped_module() -> None:
    torch.manual_seed(0)
    model = ModuleModel(TinyNet(), name="tiny")
    ids = ids_batch()
    twin = copy.deepcopy(model)
    assert twin.module is not model.module and twin.name == "tiny"
    torch.testing.assert_close(twin(ids), model(ids), rtol=0, atol=0)
    assert twin.settings() == model.settings()
    state = model.state_dict()
    assert set(state) == {f"module.{k}" for k in model.module.state_dict()}
    other = ModuleModel(TinyNet(), name="tiny")
    other.load_state_dict(state)
    torch.testing.assert_close(other(ids), model(ids), rtol=0, atol=0)
    assert weights_sha256(other) == weights_sha256(model) == api.weights_digest(model)
    with torch.no_grad():
        other.module.rnn.weight_hh_l0[0, 0] += 1
    assert weights_sha256(other) != weights_sha256(model)

    fresh = zoo.reinitialised(model, seed=1)  # the untrained control of a brought model
    for name, p in fresh.named_parameters():
        assert not torch.equal(p, model.get_parameter(name)), name


def test_weights_sha256_reads_zero_dim_buffers() -> None:
    net = nn.Sequential(nn.Embedding(8, 4), nn.BatchNorm1d(7))  # num_batches_tracked: a 0-d tensor
    assert weights_sha256(net) != weights_sha256(nn.Sequential(nn.Embedding(8, 4), nn.BatchNorm1d(7)))


# -- vocabularies ---------------------------------------------------------------------------------------------
def test_a_model_reading_too_few_token_ids_is_refused_before_any_forward() -> None:
    task = NumericTask(objects="multi")
    assert task.vocab.size == 8
    net = TinyNet(vocab=5)
    model = as_sequence_model(net, name="gru")
    assert input_vocab_size(model) == input_vocab_size(net) == 5
    with pytest.raises(ConfigError) as err:
        check_reads_vocab(model, task.vocab, what=f"task {task.name}")
    assert str(err.value) == (
        "model=gru is not allowed: expected a model that reads the 8 tokens of task multiobject "
        "(P B E D0 D1 D2 R T); it reads 5 token ids"
    )
    assert net.calls == 0
    assert check_reads_vocab(TinyNet(vocab=8), task.vocab) == 8
    assert check_reads_vocab(TinyNet(vocab=12), task.vocab, key="partner") == 12  # more ids: fine
    assert check_reads_vocab(nn.GRU(4, 4), task.vocab) is None  # unknown: the caller may probe
    assert input_vocab_size(GRU(vocab_size=6, d_model=16)) == 6


def test_input_vocab_size_prefers_a_vocab_size_attribute() -> None:
    net = TinyNet(vocab=8)
    net.vocab_size = 10
    assert input_vocab_size(net) == input_vocab_size(ModuleModel(net)) == 10
    net.vocab_size = True  # not a size
    assert input_vocab_size(net) == 8


def test_ids_outside_the_vocabulary_name_the_largest_id_and_the_size() -> None:
    check_ids_in_vocab(torch.tensor([[0, 7, 3]]), 8, key="pairs")
    check_ids_in_vocab(torch.tensor([[0, 99]]), None)  # size unknown
    check_ids_in_vocab(torch.zeros(0, dtype=torch.long), 8)
    with pytest.raises(ConfigError) as err:
        check_ids_in_vocab(torch.tensor([[0, 12], [9, 1]]), 8, key="pairs")
    assert str(err.value) == (
        "pairs=token id 12 is not allowed: expected token ids in [0, 8), the ids the model reads "
        "(the largest given is 12)"
    )
    with pytest.raises(ConfigError, match=r"^pairs\.base=token id -1 .*\(the smallest given is -1\)$"):
        check_ids_in_vocab(torch.tensor([3, -1]), 8, key="pairs.base", what="lm_gpt2")


# -- a HuggingFace causal LM in memory ------------------------------------------------------------------------
def in_memory(folder):
    transformers = pytest.importorskip("transformers")
    lm = transformers.AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return lm, tokenizer


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_an_lm_in_memory_reads_like_the_same_lm_from_its_folder(toy_lms, arch) -> None:
    from alignsearch.models.lm import TextLM
    from alignsearch.text import toy

    loaded = TextLM(str(toy_lms[arch]))
    given = TextLM.from_model(*in_memory(toy_lms[arch]))
    assert given.name == f"lm_{arch}" and given.folder is None
    assert given.settings() == {"path": None, "dtype": "float32"}
    assert set(given.settings()) == set(loaded.settings())
    assert (given.sites, given.vocab_size, given.pad_id) == (loaded.sites, loaded.vocab_size, loaded.pad_id)
    assert not any(p.requires_grad for p in given.parameters()) and not given.train().training
    given.tokenizer.padding_side = loaded.tokenizer.padding_side = "left"
    enc = loaded.tokenizer(toy.count_prompts(4, seed=0), padding=True, return_tensors="pt")
    assert given.tokenizer(toy.count_prompts(4, seed=0), padding=True).input_ids == enc.input_ids.tolist()
    module_path = {"gpt2": "transformer.h.0.mlp", "llama": "model.layers.0.mlp"}[arch]
    for site in [*loaded.sites, module_path]:
        torch.testing.assert_close(
            given.activations(enc.input_ids, site, attention_mask=enc.attention_mask),
            loaded.activations(enc.input_ids, site, attention_mask=enc.attention_mask),
            rtol=0,
            atol=0,
        )
    torch.testing.assert_close(
        given(enc.input_ids, attention_mask=enc.attention_mask),
        loaded(enc.input_ids, attention_mask=enc.attention_mask),
        rtol=0,
        atol=0,
    )
    assert TextLM.from_model(*in_memory(toy_lms[arch]), name="mine").name == "lm_mine"


def test_an_lm_in_memory_is_named_by_its_weights_and_tokenizer(toy_lms) -> None:
    from alignsearch.models.lm import TextLM

    model, tokenizer = in_memory(toy_lms["gpt2"])
    lm = TextLM.from_model(model, tokenizer)
    digest = lm.weights_sha256()
    assert len(digest) == 64 and digest != TextLM(str(toy_lms["gpt2"])).weights_sha256()  # not the files
    assert TextLM.from_model(*in_memory(toy_lms["gpt2"])).weights_sha256() == digest
    lm.tokenizer(["apple pear . how many ?", "cup"], padding=True, truncation=True)  # leaves padding set
    assert lm.weights_sha256() == digest
    assert TextLM.from_model(*in_memory(toy_lms["gpt2_untrained"])).weights_sha256() != digest
    weight = model.get_input_embeddings().weight
    before = weight[0, 0].item()
    with torch.no_grad():
        weight[0, 0] += 1  # the very model given, written in place
    assert lm.weights_sha256() != digest
    with torch.no_grad():
        weight[0, 0] = before
    assert lm.weights_sha256() == digest
    unswapped = TextLM.from_model(model, swapped_tokenizer("apple", "apple")).weights_sha256()
    assert TextLM.from_model(model, swapped_tokenizer("apple", "pear")).weights_sha256() not in (
        digest,
        unswapped,
    )


def swapped_tokenizer(one: str, other: str):
    """The toy tokenizer with the ids of two words swapped: as many tokens, read differently."""
    transformers = pytest.importorskip("transformers")
    import tokenizers

    from alignsearch.text import toy

    words = list(toy.WORDS)
    i, j = words.index(one), words.index(other)
    words[i], words[j] = words[j], words[i]
    model = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({w: k for k, w in enumerate(words)}, unk_token=toy.UNK)
    )
    model.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=model, pad_token=toy.PAD, unk_token=toy.UNK, eos_token=toy.EOS
    )


def test_an_lm_in_memory_copies_like_one_from_a_folder(toy_lms) -> None:
    """The ``untrained`` control deep-copies the model and loads fresh weights made from its config."""
    transformers = pytest.importorskip("transformers")
    from alignsearch.models.lm import TextLM

    lm = TextLM.from_model(*in_memory(toy_lms["gpt2"]))
    ids = lm.tokenizer(["apple pear . how many ?"], return_tensors="pt").input_ids
    digest = lm.weights_sha256()
    twin = copy.deepcopy(lm)
    assert twin.lm is not lm.lm and twin.name == lm.name and twin.settings() == lm.settings()
    torch.testing.assert_close(twin(ids), lm(ids), rtol=0, atol=0)
    assert twin.weights_sha256() == digest
    torch.manual_seed(0)
    twin.lm.load_state_dict(transformers.AutoModelForCausalLM.from_config(lm.lm.config).state_dict())
    assert twin.weights_sha256() != digest == lm.weights_sha256()
    assert not torch.allclose(twin(ids), lm(ids))


def test_what_is_not_a_causal_lm_with_its_tokenizer_is_refused(toy_lms) -> None:
    transformers = pytest.importorskip("transformers")
    from alignsearch.models.lm import TextLM

    model, tokenizer = in_memory(toy_lms["gpt2"])
    cases = [
        ((nn.Linear(4, 4), tokenizer), r"^model=Linear is not allowed: expected a transformers causal LM"),
        ((model.transformer, tokenizer), r"^model=GPT2Model is not allowed: .*\(it has no LM head\)$"),
        ((model, None), r"^tokenizer=NoneType is not allowed: expected the model's transformers tokenizer"),
        ((model, tokenizer, "a b"), r"^name=a b is not allowed"),
    ]
    small = transformers.AutoModelForCausalLM.from_config(
        transformers.AutoConfig.for_model("gpt2", vocab_size=10, n_embd=8, n_layer=1, n_head=2)
    )
    cases.append(
        ((small, tokenizer), r"^tokenizer=\w+ is not allowed: expected a tokenizer of at most 10 tokens")
    )
    for args, pattern in cases:
        with pytest.raises(ConfigError, match=pattern) as err:
            TextLM.from_model(*args)
        assert "\n" not in str(err.value)


def test_a_tokenizer_without_a_pad_token_is_copied_to_pad_with_eos(toy_lms) -> None:
    from alignsearch.models.lm import TextLM

    model, tokenizer = in_memory(toy_lms["gpt2"])
    tokenizer.pad_token = None
    lm = TextLM.from_model(model, tokenizer)
    assert lm.tokenizer.pad_token == "[EOS]" and lm.pad_id == 2
    assert tokenizer.pad_token is None  # the one given is left as it is
