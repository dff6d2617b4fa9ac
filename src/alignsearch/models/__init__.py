"""Task models with named intervention sites."""

from alignsearch.models import hooks
from alignsearch.models.base import Intervention, SequenceModel, layer_sites
from alignsearch.models.recurrent import GRU, LSTM, RNN, RecurrentModel
from alignsearch.models.transformer import Transformer

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Intervention",
    "RecurrentModel",
    "SequenceModel",
    "Transformer",
    "hooks",
    "layer_sites",
]
