"""Task models with named intervention sites."""

from alignsearch.models import hooks
from alignsearch.models.base import Intervention, SequenceModel, layer_sites
from alignsearch.models.recurrent import GRU, LSTM, RNN, RecurrentModel
from alignsearch.models.transformer import Transformer
from alignsearch.models.wrapped import ModuleModel, as_sequence_model

__all__ = [
    "GRU",
    "LSTM",
    "ModuleModel",
    "RNN",
    "Intervention",
    "RecurrentModel",
    "SequenceModel",
    "Transformer",
    "as_sequence_model",
    "hooks",
    "layer_sites",
]
