"""Train a task model into the zoo: ``python train_task_model.py model=gru task=multiobject seed=0``."""

from alignsearch.cli.train_task_model import run

if __name__ == "__main__":
    run()
