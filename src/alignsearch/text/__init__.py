"""Language models on text: counterfactual pairs from files or Python rows, corpora for behavioural MAS,
and small trained test models."""
