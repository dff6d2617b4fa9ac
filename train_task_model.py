"""Train a task model into the zoo: ``python train_task_model.py model=gru task=multiobject seed=0``."""

from alignsearch.cli.commands import train

if __name__ == "__main__":
    train()
