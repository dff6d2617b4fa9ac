"""Cost of one alignment training step: DAS (one GRU, one direction) against MAS (two GRUs, four directions).

    python benchmarks/mas_speed.py [--steps 150] [--threads 2]

Both run the real Lightning loop on MultiObject ``count`` pairs (indywise, batch 128 per direction, 16
units, rotations on the 128-wide GRU layer); the figure is the median wall time of a training step
(forward through every trained direction, backward, Adam step) after 10 warm-up steps. Target: a MAS step
costs at most 2.5 times a DAS step. (The published code on this kind of machine: 1.38 s per DAS step.)
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch

from alignsearch.alignment import FixedLayout, Interchange, Rotation
from alignsearch.engine.trainer import quiet_lightning
from alignsearch.models import GRU
from alignsearch.search.datamodule import PairDataModule
from alignsearch.search.module import AlignmentModule
from alignsearch.search.pairs import Track, pair_tensors
from alignsearch.seeding import generator
from alignsearch.tasks import NumericTask, causal_model_for
from alignsearch.tasks.counterfactual import make_pairs

WARMUP = 10
SITE = "layer.0"


class StepTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter() - self._start)


def step_seconds(n_models: int, steps: int) -> float:
    task = NumericTask(objects="multi", hold_outs=[4, 9, 14, 17])
    causal = causal_model_for(task, "updown")
    torch.manual_seed(0)
    models = [
        GRU(vocab_size=task.vocab.size, d_model=128).eval().requires_grad_(False) for _ in range(n_models)
    ]
    tracks = [Track(s, t, "count") for s in range(n_models) for t in range(n_models)]
    train = {
        track.name: pair_tensors(
            make_pairs(task, causal, "count", 4096, generator(0, track.name)), models[track.source], SITE
        )
        for track in tracks
    }
    interchange = Interchange([Rotation(128) for _ in models], FixedLayout(["count"], [16], 128, 128))
    module = AlignmentModule(models, [SITE] * n_models, interchange, tracks, eval_splits=())
    timer = StepTimer()
    trainer = L.Trainer(
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=PairDataModule(train, {}, 128, 128, seed=0))
    return statistics.median(timer.times[WARMUP:])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quiet_lightning()
    das = step_seconds(1, args.steps)
    mas = step_seconds(2, args.steps)
    print(f"DAS step (1 GRU, 1 direction):  {das * 1000:6.1f} ms")
    print(f"MAS step (2 GRUs, 4 directions): {mas * 1000:6.1f} ms  = {mas / das:.2f} x DAS (target <= 2.5 x)")
    print(f"MAS per direction:               {mas / 4 * 1000:6.1f} ms  = {mas / 4 / das:.2f} x DAS")


if __name__ == "__main__":
    main()
