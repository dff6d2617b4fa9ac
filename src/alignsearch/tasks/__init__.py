"""Tasks: vocabularies, vectorised sequence sampling, and the causal models that explain them."""

from alignsearch.tasks.arithmetic import ArithmeticTask
from alignsearch.tasks.batch import SequenceBatch
from alignsearch.tasks.causal import (
    CAUSAL_MODELS,
    ENVIRONMENT,
    CausalModel,
    Increment,
    Trajectory,
    UpDown,
    UpUp,
    causal_model_for,
)
from alignsearch.tasks.numeric import NumericTask
from alignsearch.tasks.rules import response_rule
from alignsearch.tasks.vocab import Vocabulary, numeric_vocabulary

Task = NumericTask | ArithmeticTask

__all__ = [
    "CAUSAL_MODELS",
    "ENVIRONMENT",
    "ArithmeticTask",
    "CausalModel",
    "Increment",
    "NumericTask",
    "SequenceBatch",
    "Task",
    "Trajectory",
    "UpDown",
    "UpUp",
    "Vocabulary",
    "causal_model_for",
    "numeric_vocabulary",
    "response_rule",
]
