"""Fixtures of the API's integration tests: the tiny zoo's GRU as ``api.model`` gives it, and a tiny DAS
run on it."""

from __future__ import annotations

import pytest

from alignsearch import api, zoo
from tests.helpers import QUICK_API, TINY_ALIGNMENT, TINY_TRAINING


@pytest.fixture(scope="module")
def gru(tiny_zoo) -> zoo.ZooEntry:
    return api.model(zoo_dir=tiny_zoo, overrides=TINY_TRAINING)


@pytest.fixture(scope="module")
def das(gru) -> api.AlignmentResult:
    return api.align(gru, overrides=TINY_ALIGNMENT, **QUICK_API)
