"""Tasks: vocabularies, vectorised sequence sampling, and the causal models that explain them.

What any task provides is the :class:`Task` protocol (:mod:`alignsearch.tasks.protocol`); causal models
register by name (:func:`register_causal_model`) and say which tasks they fit.
"""

from alignsearch.tasks.arithmetic import ArithmeticTask
from alignsearch.tasks.batch import SequenceBatch
from alignsearch.tasks.causal import (
    CAUSAL_MODELS,
    DEMO_PHASE,
    ENVIRONMENT,
    RESPONSE_PHASE,
    CausalModel,
    Increment,
    Trajectory,
    UpDown,
    UpUp,
    causal_model_for,
    causal_models_for,
    register_causal_model,
)
from alignsearch.tasks.numeric import NumericTask
from alignsearch.tasks.protocol import CountTask, Task
from alignsearch.tasks.rules import response_rule
from alignsearch.tasks.vocab import Vocabulary, numeric_vocabulary

__all__ = [
    "CAUSAL_MODELS",
    "DEMO_PHASE",
    "ENVIRONMENT",
    "RESPONSE_PHASE",
    "ArithmeticTask",
    "CausalModel",
    "CountTask",
    "Increment",
    "NumericTask",
    "SequenceBatch",
    "Task",
    "Trajectory",
    "UpDown",
    "UpUp",
    "Vocabulary",
    "causal_model_for",
    "causal_models_for",
    "numeric_vocabulary",
    "register_causal_model",
    "response_rule",
]
