"""The accuracy metrics and the stop-at-accuracy callback, on hand-made inputs with known answers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from alignsearch.engine.callbacks import StopAtAccuracy
from alignsearch.engine.metrics import TokenAccuracy, TrialAccuracy

T, F = True, False
# four sequences of three tokens
PREDS = torch.tensor([[1, 2, 3], [1, 2, 3], [1, 0, 3], [5, 5, 5]])
TARGETS = torch.tensor([[1, 2, 3], [1, 2, 0], [1, 2, 3], [0, 0, 0]])
MASK = torch.tensor([[T, T, T], [T, T, F], [F, T, T], [F, F, F]])
# sequence 0: all right; 1: its wrong token is outside the task mask; 2: a task token wrong;
# 3: no task token (counts as right, adds no token)


def test_trial_accuracy_counts_sequences_whose_task_tokens_are_all_right() -> None:
    metric = TrialAccuracy()
    metric.update(PREDS, TARGETS, MASK)
    assert float(metric.compute()) == pytest.approx(3 / 4)


def test_token_accuracy_pools_the_task_tokens_of_all_sequences() -> None:
    metric = TokenAccuracy()
    metric.update(PREDS, TARGETS, MASK)
    assert float(metric.compute()) == pytest.approx(6 / 7)  # not the mean of per-sequence accuracies


@pytest.mark.parametrize(("cls", "expected"), [(TrialAccuracy, 3 / 4), (TokenAccuracy, 6 / 7)])
def test_accuracies_accumulate_over_batches(cls, expected) -> None:
    metric = cls()
    metric.update(PREDS[:1], TARGETS[:1], MASK[:1])
    metric.update(PREDS[1:], TARGETS[1:], MASK[1:])
    assert float(metric.compute()) == pytest.approx(expected)
    metric.reset()
    metric.update(PREDS[2:3], TARGETS[2:3], MASK[2:3])  # only the sequence with a wrong task token
    assert float(metric.compute()) == pytest.approx(0.0 if cls is TrialAccuracy else 1 / 2)


def validations(callback: StopAtAccuracy, values: list[float | None], sanity: bool = False) -> list[bool]:
    """``trainer.should_stop`` after each validation that reports ``values`` (None: the metric absent)."""
    trainer = SimpleNamespace(sanity_checking=sanity, callback_metrics={}, should_stop=False)
    stops = []
    for value in values:
        trainer.callback_metrics = {} if value is None else {"val/trial_acc": torch.tensor(value)}
        callback.on_validation_end(trainer, None)
        stops.append(trainer.should_stop)
    return stops


def test_stop_at_accuracy_waits_for_patience_validations_in_a_row() -> None:
    stop = StopAtAccuracy(threshold=0.75, patience=2)
    assert validations(stop, [1.0, 0.5, 0.75, 1.0]) == [F, F, F, T]  # the miss starts the count again


def test_stop_at_accuracy_with_patience_one_stops_at_the_first_hit() -> None:
    assert validations(StopAtAccuracy(threshold=0.75), [0.25, 0.5, 0.75]) == [F, F, T]  # at the threshold


def test_stop_at_accuracy_ignores_the_sanity_check_and_a_missing_metric() -> None:
    stop = StopAtAccuracy(threshold=0.9, patience=2)
    assert validations(stop, [1.0], sanity=True) == [F] and stop.hits == 0
    assert validations(stop, [1.0, None, 1.0]) == [F, F, T]  # an absent metric neither counts nor resets


def test_stop_at_accuracy_hits_survive_a_resume() -> None:
    stop = StopAtAccuracy(threshold=0.9, patience=3)
    validations(stop, [0.95, 0.95])
    resumed = StopAtAccuracy(threshold=0.9, patience=3)
    resumed.load_state_dict(stop.state_dict())
    assert validations(resumed, [0.95]) == [T]
