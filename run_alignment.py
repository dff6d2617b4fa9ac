"""Align a causal variable in a trained task model: ``python run_alignment.py model=gru alignment=das``."""

from alignsearch.cli.run_alignment import run

if __name__ == "__main__":
    run()
