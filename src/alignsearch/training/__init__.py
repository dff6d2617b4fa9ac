"""Lightning training of task models (next-token prediction on a task, into the zoo)."""

from alignsearch.training.data import TaskDataModule, TrainingStream
from alignsearch.training.fit import fit_task_model
from alignsearch.training.task_module import TaskModelModule

__all__ = [
    "TaskDataModule",
    "TaskModelModule",
    "TrainingStream",
    "fit_task_model",
]
