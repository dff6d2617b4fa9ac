"""Align a causal variable in a trained task model: ``python run_alignment.py model=gru alignment=das``."""

from alignsearch.cli import launch
from alignsearch.cli.checks import check_run_config
from alignsearch.cli.run_alignment import GROUPS, main

if __name__ == "__main__":
    launch(main, config_name="run_alignment", groups=GROUPS, check=check_run_config)
