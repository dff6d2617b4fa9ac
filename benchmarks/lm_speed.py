"""Cost of a DAS step on a language model of a real size, against a plain training step of the model.

    python benchmarks/lm_speed.py [--steps 5] [--threads 2]

Two models with random weights built from ``transformers`` configs (nothing is downloaded), float32 on
the CPU: GPT-2 small (12 layers, width 768, 12 heads, vocabulary 50257) and a Llama of about its size
(12 layers, width 768, 12 heads, MLP 2048, vocabulary 32000). A batch is 16 sequences of 64 tokens; each
row is swapped at one position at ``layer.6`` (16 units: the aligned subspace) and scored on the 4 tokens
after it, as :class:`~alignsearch.search.module.AlignmentModule` trains (its ``run``, a backward pass and
an Adam step on the alignment; no Lightning loop).

Per model, the alignment functions ``das`` (a 768 x 768 rotation), ``das_lowrank`` (768 x 16 columns) and
``fca``, each with the frozen-prefix cache (the target states at ``layer.6`` computed once per pair; steps
run blocks 7-11, the final norm and the read-out) and without it (every step runs all 12 blocks); and
``plain f+b``: one forward and backward pass of the whole model with every parameter trainable, logits at
all 64 positions (no optimizer step). Columns:

* ``s/step``: the median wall time of ``--steps`` steps (the first one's one-off costs fall outside it);
* ``x plain``: that time over the plain forward+backward's;
* ``peak RSS``: the peak resident set size (``resource.getrusage``, ``ru_maxrss``) of a process forked
  for that configuration alone: the model, the pairs, the cache and the steps;
* ``step RSS``: how far the steps raised it above the resident size before them (the activations and
  gradients a step keeps; 0 when the steps stayed under an earlier peak).

Below the table: the one-off time to compute the cached states of the 64 pairs (4 batches), once per
model (the cached configurations read them). The cache saves compute, not memory: without it the blocks
below the site run without gradients too (nothing there requires one), so the backward pass keeps nothing
of theirs either. It pays once the training draws each pair more than once on average.

Each configuration runs in its own forked process, so the peaks do not mix (the parent builds the models
and pairs on one thread: OpenMP threads started before a fork would hang the child). The whole run took
160 s at the default ``--steps 5`` with 2 threads on an otherwise idle 2-core machine. Linux only
(``fork`` and ``/proc/self/statm``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from alignsearch.alignment import FCA, FixedLayout, Interchange, LowRankRotation, Rotation
from alignsearch.models import hooks
from alignsearch.models.hf import HFSequenceModel, require_transformers
from alignsearch.search.module import AlignmentModule
from alignsearch.search.pairs import BASE, PairBatch, PrefixCache, Track, add_base_states, select

BATCH, LENGTH = 16, 64
N_PAIRS = 4 * BATCH
"""Pairs whose states the cache holds (the batches are drawn from them)."""
SITE, N_UNITS, SCORED = "layer.6", 16, 4
"""The aligned site, the units of the one variable, and the tokens scored after each swapped position."""
MB = 2**20
MODELS = {
    "gpt2": {"n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257, "n_positions": 1024},
    "llama": {
        "num_hidden_layers": 12,
        "hidden_size": 768,
        "num_attention_heads": 12,
        "intermediate_size": 2048,
        "vocab_size": 32000,
    },
}
FUNCTIONS = {
    "das": lambda width: Rotation(width),
    "das_lowrank": lambda width: LowRankRotation(width, N_UNITS),
    "fca": lambda width: FCA(width, N_UNITS),
}


class RandomLM(HFSequenceModel):
    """A frozen ``transformers`` causal LM with random weights, from the config in :data:`MODELS`."""

    def __init__(self, architecture: str, seed: int = 0) -> None:
        super().__init__()
        transformers = require_transformers()
        torch.manual_seed(seed)
        config = transformers.AutoConfig.for_model(architecture, **MODELS[architecture])
        self._attach(transformers.AutoModelForCausalLM.from_config(config).eval())
        self.lm.requires_grad_(False)


def make_pairs(model: RandomLM, seed: int = 0) -> PairBatch:
    """``N_PAIRS`` random base and source texts of ``LENGTH`` tokens, swapped at a position in the middle
    half, scored on the ``SCORED`` tokens after it; sources are the model's own states at the site."""
    g = torch.Generator().manual_seed(seed)
    vocab = model.lm.config.vocab_size
    ids = torch.randint(vocab, (N_PAIRS, LENGTH + 1), generator=g)
    pos = torch.randint(LENGTH // 4, 3 * LENGTH // 4, (N_PAIRS,), generator=g)
    columns = torch.arange(LENGTH + 1)[None, :]
    task_mask = (columns > pos[:, None]) & (columns <= pos[:, None] + SCORED)
    source_ids = torch.randint(vocab, (N_PAIRS, LENGTH), generator=g)
    with torch.no_grad():
        src = hooks.site_activations(model, source_ids, SITE)[torch.arange(N_PAIRS), pos].float()
    return {"ids": ids, "task_mask": task_mask, "pos": pos, "src": src}


def rss_mb() -> float:
    """The resident set size now (``/proc/self/statm``), in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / MB


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def cached_states(model: RandomLM, pairs: PairBatch) -> dict[str, Any]:
    """The pairs' target states at the site (what the prefix cache holds), and the seconds they took."""
    track = Track(0, 0, "count")
    train = {track.name: dict(pairs)}
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        add_base_states([train], [track], [model], [SITE], PrefixCache(1024, Path(folder)))
        seconds = time.perf_counter() - start
    return {"states": train[track.name][BASE].numpy(), "seconds": seconds}  # sent by value


def align_steps(model: RandomLM, pairs: PairBatch, function: str, steps: int) -> dict[str, Any]:
    """Seconds per alignment step (run, backward, Adam); the pairs carry cached states or not."""
    track = Track(0, 0, "count")
    torch.manual_seed(1)
    f = FUNCTIONS[function](model.d_model)
    interchange = Interchange([f], FixedLayout(["count"], [N_UNITS], f.code_width, f.n_aligned))
    module = AlignmentModule([model], [SITE], interchange, [track], eval_splits=())
    optimizer = torch.optim.Adam(interchange.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(2)
    times = []
    before = rss_mb()
    for _ in range(steps):
        batch = select(pairs, torch.randint(N_PAIRS, (BATCH,), generator=g))
        start = time.perf_counter()
        optimizer.zero_grad()
        module.run(track, batch).loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "before": before}


def plain_steps(model: RandomLM, pairs: PairBatch, steps: int) -> dict[str, Any]:
    """Seconds per forward and backward pass of the whole model, every parameter trainable."""
    model.lm.requires_grad_(True)
    g = torch.Generator().manual_seed(2)
    times = []
    before = rss_mb()
    for _ in range(steps):
        ids = pairs["ids"][torch.randint(N_PAIRS, (BATCH,), generator=g)]
        start = time.perf_counter()
        model.lm.zero_grad(set_to_none=True)
        logits = model(ids[:, :-1])
        F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).backward()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "before": before}


def child(conn, job: str, model: RandomLM, pairs: PairBatch, steps: int, threads: int) -> None:
    torch.set_num_threads(threads)
    if job == "cache":
        out = cached_states(model, pairs)
    elif job == "plain":
        out = plain_steps(model, pairs, steps)
    else:
        out = align_steps(model, pairs, job, steps)
    conn.send(out | {"peak": peak_rss_mb()})
    conn.close()


def measure(job: str, model: RandomLM, pairs: PairBatch, args) -> dict[str, Any]:
    """One job (``cache``, ``plain`` or an alignment function) in a forked process of its own (its peak
    resident size is its own)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=child, args=(send, job, model, pairs, args.steps, args.threads))
    process.start()
    out = receive.recv()
    process.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(1)  # no OpenMP worker threads before a fork (a forked child would wait on them)
    started = time.perf_counter()
    print(f"batch {BATCH} x {LENGTH} tokens, {N_UNITS} units at {SITE}, float32, {args.threads} threads\n")
    print("| model | function | prefix cache | s/step | x plain | peak RSS MB | step RSS MB |")
    print("|---|---|---|---:|---:|---:|---:|")
    notes = []
    for architecture in MODELS:
        model = RandomLM(architecture)
        pairs = make_pairs(model)
        plain = measure("plain", model, pairs, args)
        cache = measure("cache", model, pairs, args)
        with_states = pairs | {BASE: torch.from_numpy(cache["states"])}
        rows = [("plain f+b", "-", plain)]
        for function in FUNCTIONS:
            rows.append((function, "no", measure(function, model, pairs, args)))
            rows.append((function, "yes", measure(function, model, with_states, args)))
        for function, cached, out in rows:
            print(
                f"| {architecture} | {function} | {cached} | {out['seconds']:.3f} | "
                f"{out['seconds'] / plain['seconds']:.2f} | {out['peak']:.0f} | "
                f"{max(0.0, out['peak'] - out['before']):.0f} |",
                flush=True,
            )
        size = cache["states"].nbytes / MB
        notes.append(
            f"{architecture}: the cache of {N_PAIRS} pairs ({size:.0f} MB) took {cache['seconds']:.1f} s"
        )
        del model, pairs, with_states, cache
    print("\n" + "\n".join(notes))
    print(f"{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
