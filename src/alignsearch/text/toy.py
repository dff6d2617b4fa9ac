"""Small trained language models for tests and examples, built offline in seconds.

The task is counting: a text lists object words and asks how many there are; the answer is a number
word, so the model must hold the count at the last prompt token (``?``, or ``=`` in the terse style)::

    plain:  apple pear apple . how many ? three
    terse:  apple pear apple = three

The vocabulary is word-level (:func:`build_tokenizer`), so every word is one token. :func:`build_toy_lm`
trains a tiny GPT-2 or Llama from random weights on one style and saves it with its tokenizer
(``save_pretrained``), ready for :class:`~alignsearch.models.lm.TextLM`; :func:`finetune_toy_lm` goes on
training a copy on the other style, and :func:`build_untrained_lm` saves a random model of the same shape.
:func:`count_pair_rows` gives the counterfactual rows of the count variable, in the pairs-file format::

    build_toy_lm("toy_gpt2")                                  # BuiltLM(folder=..., accuracy=1.0, steps=25)
    finetune_toy_lm("toy_gpt2", "toy_gpt2_terse")             # the same model, answering terse prompts
    TextLM("toy_gpt2").tokenizer("cup . how many ?").input_ids  # [5, 11, 12, 13, 14]

Everything is seeded: the same arguments give the same files (on the same torch build and thread count).
Needs ``transformers`` (``pip install -e ".[hf]"``) for the tokenizer and the models only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from alignsearch.errors import ConfigError, require_positive
from alignsearch.models.hf_load import LOCAL_ONLY, require_transformers

if TYPE_CHECKING:
    from transformers import PreTrainedModel

PAD, UNK, EOS = "[PAD]", "[UNK]", "[EOS]"
OBJECTS = ("apple", "pear", "cup", "box", "pen", "key", "hat", "egg")
NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
"""The number words: ``NUMBERS[c - 1]`` answers a count ``c`` (1 to 9)."""
QUESTIONS = {"plain": ". how many ?", "terse": "="}
"""Style -> the words that end a prompt, after the object words."""
WORDS = (PAD, UNK, EOS, *OBJECTS, *dict.fromkeys(w for q in QUESTIONS.values() for w in q.split()), *NUMBERS)
"""The whole vocabulary, in id order: ``[PAD]`` is 0."""

ARCHITECTURES = ("gpt2", "llama")
N_HEADS = 2
MAX_POSITIONS = 32
"""Position table size: the longest text is 9 objects, 4 question words and the answer (14 tokens)."""
FFN_MULT = 4
"""Llama's MLP width as a multiple of ``d_model`` (GPT-2's is 4 by its own default)."""
BATCH = 64
LR = 3e-3
EVAL_EVERY = 25
"""Training steps between two looks at the held-out accuracy."""
N_EVAL = 256
"""Held-out prompts behind the accuracy that stops training."""
STOP_AT = 0.99
"""Training stops once this share of held-out prompts is answered right (or after ``steps``)."""
IGNORE = -100
"""The label of a position the loss leaves out (padding, and the last token)."""


# -- texts ----------------------------------------------------------------------------------------------------
def count_examples(n: int, seed: int, style: str = "plain") -> list[tuple[str, str, int]]:
    """``n`` (prompt, answer, count) triples; counts uniform in 1..9, object words drawn at random.

    >>> count_examples(1, seed=0)
    [('hat apple pen egg hat pen egg . how many ?', ' seven', 7)]
    """
    check_style(style)
    return _examples(random.Random(seed), n, style)


def count_prompts(n: int, seed: int, style: str = "plain") -> list[str]:
    """``n`` prompts without their answers (a corpus to compare models on).

    >>> count_prompts(1, seed=0, style="terse")
    ['hat apple pen egg hat pen egg =']
    """
    return [prompt for prompt, _, _ in count_examples(n, seed, style)]


def count_sentences(n: int, seed: int, style: str = "plain") -> list[str]:
    """``n`` whole texts, prompt and answer (what the models are trained on).

    >>> count_sentences(1, seed=0)
    ['hat apple pen egg hat pen egg . how many ? seven']
    """
    return [prompt + answer for prompt, answer, _ in count_examples(n, seed, style)]


def count_pair_rows(
    n: int, seed: int, style: str = "plain", counterfactual: bool = False
) -> list[dict[str, str]]:
    """``n`` counterfactual rows of the count variable: a ``base`` and a ``source`` prompt of different counts,
    and the ``target`` a model should answer to the base once the count it holds at the base's last token
    is the source's (the source's answer). The pairs-file format: the position defaults to the last prompt
    token. ``counterfactual``: each row also gives a ``counterfactual`` prompt, the base's objects cut or
    extended (by the source's) to the source's count: a prompt that naturally holds the intervened state
    (the counterfactual-latent loss's natural target). The other fields are the same either way.

    >>> row = count_pair_rows(1, seed=0, counterfactual=True)[0]
    >>> row["base"], row["target"]
    ('apple pen egg hat pen egg key . how many ?', ' nine')
    >>> row["source"]
    'box cup pen cup pear pen cup pen pear . how many ?'
    >>> row["counterfactual"]
    'apple pen egg hat pen egg key box cup . how many ?'
    """
    check_style(style)
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        base, source = rng.sample(range(1, len(NUMBERS) + 1), 2)
        base_prompt, _, _ = _example(rng, base, style)
        source_prompt, answer, _ = _example(rng, source, style)
        row = {"base": base_prompt, "source": source_prompt, "target": answer}
        if counterfactual:
            objects = (base_prompt.split()[:base] + source_prompt.split()[:source])[:source]
            row["counterfactual"] = f"{' '.join(objects)} {QUESTIONS[style]}"
        rows.append(row)
    return rows


def check_style(style: str) -> str:
    if style not in QUESTIONS:
        raise ConfigError("style", style, f"one of {', '.join(QUESTIONS)}")
    return style


def _examples(rng: random.Random, n: int, style: str) -> list[tuple[str, str, int]]:
    return [_example(rng, rng.randint(1, len(NUMBERS)), style) for _ in range(n)]


def _example(rng: random.Random, count: int, style: str) -> tuple[str, str, int]:
    objects = " ".join(rng.choice(OBJECTS) for _ in range(count))
    return f"{objects} {QUESTIONS[style]}", f" {NUMBERS[count - 1]}", count


# -- tokenizer ------------------------------------------------------------------------------------------------
def build_tokenizer() -> Any:
    """A word-level ``PreTrainedTokenizerFast`` over :data:`WORDS` (whitespace and punctuation split words;
    unknown words are ``[UNK]``; pads with ``[PAD]`` on the right; ``[EOS]`` is its eos token).

        tok = build_tokenizer()
        tok("cup . how many ?", return_offsets_mapping=True).offset_mapping  # [(0, 3), (4, 5), ...]
    """
    transformers = require_transformers()
    import tokenizers

    model = tokenizers.models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token=UNK)
    tokenizer = tokenizers.Tokenizer(model)
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        unk_token=UNK,
        eos_token=EOS,
        model_max_length=MAX_POSITIONS,
    )


# -- models ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BuiltLM:
    """A model folder written here, with the held-out accuracy it reached and the steps it took."""

    folder: Path
    accuracy: float
    steps: int


def build_toy_lm(
    folder: str | Path,
    architecture: str = "gpt2",
    seed: int = 0,
    steps: int = 300,
    style: str = "plain",
    d_model: int = 64,
    n_layers: int = 2,
) -> BuiltLM:
    """Train a tiny ``architecture`` LM (``gpt2`` or ``llama``) from random weights on ``style`` texts for
    at most ``steps`` AdamW steps (fewer once it answers :data:`STOP_AT` of held-out prompts), and save it
    and its tokenizer in ``folder``. A few seconds on one CPU thread.

        build_toy_lm("toy_llama", architecture="llama")  # BuiltLM(folder=PosixPath('toy_llama'), ...)
    """
    transformers = require_transformers()
    check_style(style)
    if architecture not in ARCHITECTURES:
        raise ConfigError("architecture", architecture, f"one of {', '.join(ARCHITECTURES)}")
    for key, value in (("steps", steps), ("d_model", d_model), ("n_layers", n_layers)):
        require_positive(key, value)
    if d_model % N_HEADS:
        raise ConfigError("d_model", d_model, f"a multiple of {N_HEADS} (the number of heads)")
    tokenizer = build_tokenizer()
    config = _config(transformers, architecture, d_model, n_layers, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.AutoModelForCausalLM.from_config(config)
        return _train_and_save(model, tokenizer, Path(folder), style, seed, steps)


def finetune_toy_lm(
    src_folder: str | Path, dst_folder: str | Path, style: str = "terse", steps: int = 300, seed: int = 0
) -> BuiltLM:
    """Go on training the model in ``src_folder`` on ``style`` texts (as :func:`build_toy_lm` does) and
    save the result with the same tokenizer in ``dst_folder``; ``src_folder`` is left as it was.

        finetune_toy_lm("toy_gpt2", "toy_gpt2_terse")  # answers 'cup cup =' with ' two'
    """
    transformers = require_transformers()
    check_style(style)
    require_positive("steps", steps)
    model = transformers.AutoModelForCausalLM.from_pretrained(src_folder, **LOCAL_ONLY)
    tokenizer = transformers.AutoTokenizer.from_pretrained(src_folder, **LOCAL_ONLY)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _train_and_save(model, tokenizer, Path(dst_folder), style, seed, steps)


def build_untrained_lm(folder: str | Path, like: str | Path, seed: int = 0) -> Path:
    """Save in ``folder`` a freshly initialised model with the config and tokenizer of the one in ``like``:
    the baseline an alignment of a trained model is compared with.

        build_untrained_lm("toy_gpt2_random", like="toy_gpt2")
    """
    transformers = require_transformers()
    config = transformers.AutoConfig.from_pretrained(like, **LOCAL_ONLY)
    tokenizer = transformers.AutoTokenizer.from_pretrained(like, **LOCAL_ONLY)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.AutoModelForCausalLM.from_config(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def answer_accuracy(model: nn.Module, tokenizer: Any, prompts: list[str], answers: list[str]) -> float:
    """The share of ``prompts`` whose greedy next token is the first token of its answer.

    answer_accuracy(lm, tok, *zip(*[(p, a) for p, a, _ in count_examples(100, seed=9)]))  # 1.0
    """
    predicted = _next_tokens(model, tokenizer, prompts)
    wanted = torch.tensor([tokenizer(answer).input_ids[0] for answer in answers])
    return (predicted == wanted).float().mean().item()


@torch.no_grad()
def _next_tokens(model: nn.Module, tokenizer: Any, prompts: list[str]) -> Tensor:
    """The greedy next token after each prompt (a right-padded batch: read at each row's last token)."""
    batch = tokenizer(prompts, padding=True, return_tensors="pt")
    last = batch.attention_mask.sum(-1) - 1
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    return logits[torch.arange(len(prompts)), last].argmax(-1)


def _config(transformers: Any, architecture: str, d_model: int, n_layers: int, tokenizer: Any) -> Any:
    ids = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": None,
    }
    if architecture == "gpt2":
        sizes = {"n_embd": d_model, "n_layer": n_layers, "n_head": N_HEADS, "n_positions": MAX_POSITIONS}
        no_dropout = {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
        return transformers.AutoConfig.for_model("gpt2", **sizes, **no_dropout, **ids)
    sizes = {
        "hidden_size": d_model,
        "intermediate_size": FFN_MULT * d_model,
        "num_hidden_layers": n_layers,
        "num_attention_heads": N_HEADS,
        "num_key_value_heads": N_HEADS,
        "max_position_embeddings": MAX_POSITIONS,
    }
    return transformers.AutoConfig.for_model("llama", **sizes, **ids)


def _train_and_save(
    model: PreTrainedModel, tokenizer: Any, folder: Path, style: str, seed: int, steps: int
) -> BuiltLM:
    """AdamW on fresh batches of ``style`` texts (next-token loss on every real token) until the held-out
    accuracy reaches :data:`STOP_AT` or ``steps`` are done; then ``save_pretrained`` model and tokenizer."""
    train = random.Random(f"toy-train-{seed}")
    held_out = _examples(random.Random(f"toy-held-out-{seed}"), N_EVAL, style)
    prompts, answers = [p for p, _, _ in held_out], [a for _, a, _ in held_out]
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    accuracy, step = 0.0, 0
    while step < steps:
        model.train()
        batch, labels = _batch(tokenizer, train, style)
        logits = model(**batch, use_cache=False).logits
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % EVAL_EVERY == 0 or step == steps:
            model.eval()
            accuracy = answer_accuracy(model, tokenizer, prompts, answers)
            if accuracy >= STOP_AT:
                break
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return BuiltLM(folder, accuracy, step)


def _batch(tokenizer: Any, rng: random.Random, style: str) -> tuple[dict[str, Tensor], Tensor]:
    """A right-padded batch of texts (ids and attention mask) and its next-token labels (:data:`IGNORE` where nothing is scored)."""
    texts = [prompt + answer for prompt, answer, _ in _examples(rng, BATCH, style)]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    labels = batch.input_ids[:, 1:].masked_fill(batch.attention_mask[:, 1:] == 0, IGNORE)
    labels = torch.cat([labels, torch.full_like(labels[:, :1], IGNORE)], dim=1)
    return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}, labels
