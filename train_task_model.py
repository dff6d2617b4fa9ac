"""Train a task model into the zoo: ``python train_task_model.py model=gru task=multiobject seed=0``."""

from alignsearch.cli import launch
from alignsearch.cli.checks import check_train_config
from alignsearch.cli.train_task_model import GROUPS, main

if __name__ == "__main__":
    launch(main, config_name="train_task_model", groups=GROUPS, check=check_train_config)
