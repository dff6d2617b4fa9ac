"""Alignment search: the plan of a run, counterfactual pair data, the LightningModule that trains the
alignment functions on frozen models, fitting with selection and evaluation, and saved alignments."""
