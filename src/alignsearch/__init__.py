"""alignsearch: do sequence models carry symbol-like number variables?

Train small sequence models on numeric-equivalence tasks (``alignsearch.tasks``, ``alignsearch.models``,
``alignsearch.training``), keep them in a model zoo (``alignsearch.zoo``), and search for the causal
variables they compute with interchange interventions.
"""

__version__ = "0.1.0"
