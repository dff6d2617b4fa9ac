"""Align a causal variable in a trained task model: ``python run_alignment.py model=gru alignment=das``."""

from alignsearch.cli.commands import align

if __name__ == "__main__":
    align()
