"""Lightning training of task models."""

from alignsearch.training.data import TaskDataModule, TrainingStream
from alignsearch.training.fit import fit_task_model
from alignsearch.training.metrics import TokenAccuracy, TrialAccuracy
from alignsearch.training.task_module import TaskModelModule

__all__ = [
    "TaskDataModule",
    "TaskModelModule",
    "TokenAccuracy",
    "TrainingStream",
    "TrialAccuracy",
    "fit_task_model",
]
