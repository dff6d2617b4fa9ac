"""Issue 30: an alignment says which phase it is in, and refuses a zoo model that has not learned its task
(``min_task_accuracy``) before any work. The lines of a real run, in order, and the refusal as the
command prints it: ``integration/test_run_alignment_cli.py``."""

from __future__ import annotations

import pytest

from alignsearch.errors import ConfigError
from alignsearch.models import GRU
from alignsearch.search.planning import check_task_accuracy
from alignsearch.search.records import AlignmentRecord
from alignsearch.search.run import aligned_line
from alignsearch.search.spec import RunModel
from alignsearch.settings import RunSettings

RUN = {"seed": 0, "layer": 0, "n_units": 4}


def zoo_model(accuracy: float | None, steps: int = 200, name: str = "multiobject/gru/seed2-max_steps200"):
    metrics = None if accuracy is None else {"val_trial_acc": accuracy, "steps": steps, "train_seconds": 4.0}
    return RunModel(GRU(8, d_model=16), name, None, "0" * 64, training_metrics=metrics)


def test_a_model_below_the_threshold_is_refused_with_the_way_on() -> None:
    run = RunSettings.parse(RUN)
    assert run.min_task_accuracy == 0.95  # the dataclass's default is the config's
    with pytest.raises(ConfigError) as refused:
        check_task_accuracy([zoo_model(0.999, name="multiobject/gru/seed1"), zoo_model(0.27)], run)
    assert str(refused.value) == (
        "min_task_accuracy=0.95 is not allowed: expected a threshold that multiobject/gru/seed2-max_steps200 "
        "reaches: its validation trial accuracy is 0.270 after 200 training steps (train it longer, with a "
        "larger training.max_steps, or accept it with min_task_accuracy=0.27)"
    )
    accept = RunSettings.parse({**RUN, "min_task_accuracy": 0.27})  # the value it offers is accepted
    check_task_accuracy([zoo_model(0.27)], accept)
    check_task_accuracy([zoo_model(0.0)], RunSettings.parse({**RUN, "min_task_accuracy": 0}))  # 0: any


def test_only_models_the_zoo_trained_are_held_to_it() -> None:
    run = RunSettings.parse(RUN)
    check_task_accuracy([zoo_model(None)], run)  # brought from Python, a language model: no metrics
    check_task_accuracy([zoo_model(0.1)], RunSettings.parse({**RUN, "snapshot": 100}))  # early weights


@pytest.mark.parametrize("value", [-0.1, 1.5, "high", True])
def test_the_threshold_is_a_number_in_0_1(value) -> None:
    with pytest.raises(
        ConfigError, match=r"^min_task_accuracy=.* is not allowed: expected a number in \[0, 1\]$"
    ):
        RunSettings.parse({**RUN, "min_task_accuracy": value})


def test_the_line_that_ends_an_alignment() -> None:
    count = AlignmentRecord.from_json({"variable": "count", "iia": 0.5})
    phase = AlignmentRecord.from_json({"variable": "phase", "iia": 1.0})
    assert aligned_line([count], 300, 52.34) == "aligned: validation IIA 0.500 after 300 steps (52.3 s)"
    assert aligned_line([count, phase], 20, 125) == (
        "aligned: mean validation IIA 0.750 over 2 trained records after 20 steps (2m05s)"
    )
