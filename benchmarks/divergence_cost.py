"""What the divergence measures cost: a default DAS run (count of the seed-0 GRU, from the zoo; trained
first if missing), then its final validation evaluation with and without them.

    python benchmarks/divergence_cost.py [--model gru] [--layer 0] [--repeats 5]

Prints the run's wall time, the evaluation's median seconds both ways, and the difference as a share of
the run (the divergence is measured once per run, on the validation pairs).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from alignsearch import api
from alignsearch.search.module import AlignmentModule
from alignsearch.search.pairs import Track, pair_tensors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gru")
    parser.add_argument("--layer", default=0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    entry = api.model(args.model)
    start = time.perf_counter()
    result = api.align(entry, layer=int(args.layer), n_units=16, progress=False)
    run_seconds = time.perf_counter() - start
    saved = result.load()
    track = Track(0, 0, "count")
    module = AlignmentModule([entry.model], saved.sites, saved.interchange, [track], eval_splits=())
    pairs = api.pairs(entry, n=1000, seed=1)
    batch = {track.name: pair_tensors(pairs, entry.model, saved.sites[0])}
    times = {}
    for measured in (False, True):
        laps = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = module.evaluate(batch, 1000, divergence=measured)
            laps.append(time.perf_counter() - start)
        times[measured] = statistics.median(laps)
    record = result.records[0]
    extra = times[True] - times[False]
    print(f"{args.model} layer {args.layer}: run {run_seconds:.1f} s, IIA {record.iia:.3f}")
    print(
        f"final validation evaluation: {times[False]:.3f} s without, {times[True]:.3f} s with the divergence "
        f"(+{extra:.3f} s = {100 * extra / run_seconds:.2f}% of the run)"
    )
    print(
        f"divergence {out[track.name]['divergence']:.3f} (floor {out[track.name]['divergence_floor']:.3f}), "
        f"top {out[track.name]['divergence_top']}"
    )


if __name__ == "__main__":
    main()
