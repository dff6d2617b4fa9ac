"""Sampling speed: microseconds per MultiObject sequence, over 100k sequences at once.

    python benchmarks/sampling.py [--n 100000] [--repeats 5]

Target: at most 1.5 us per sequence (100x the published code's 148 us).
"""

from __future__ import annotations

import argparse
import statistics
import time

from alignsearch.seeding import generator
from alignsearch.tasks import NumericTask

PUBLISHED_US_PER_SEQUENCE = 148.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name, task in [("multiobject", NumericTask()), ("multiobject unk_p=0.2", NumericTask(unk_p=0.2))]:
        task.sample(1000, generator(0, "warm-up"))
        times = []
        for r in range(args.repeats):
            start = time.perf_counter()
            task.sample(args.n, generator(0, r))
            times.append(time.perf_counter() - start)
        us = statistics.median(times) / args.n * 1e6
        print(
            f"{name:24s} {us:6.3f} us/sequence (median of {args.repeats} x {args.n}), "
            f"{PUBLISHED_US_PER_SEQUENCE / us:5.0f}x the published code"
        )


if __name__ == "__main__":
    main()
