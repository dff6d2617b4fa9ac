"""alignsearch: do sequence models carry symbol-like number variables?

Train small sequence models on numeric-equivalence tasks (``alignsearch.tasks``, ``alignsearch.models``,
``alignsearch.training``), keep them in a model zoo (``alignsearch.zoo``), and search for the causal
variables they compute with interchange interventions.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("alignsearch")  # written once, in pyproject.toml
except _metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
