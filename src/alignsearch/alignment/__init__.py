"""Alignment functions, subspace layouts and the interchange intervention."""

from alignsearch.alignment.functions import (
    FCA,
    AlignmentFunction,
    InvertibleLinear,
    LowRankRotation,
    RevRes,
    Rotation,
    gram_schmidt,
)
from alignsearch.alignment.interchange import Interchange
from alignsearch.alignment.layout import NULL, BoundlessLayout, FixedLayout

__all__ = [
    "FCA",
    "NULL",
    "AlignmentFunction",
    "BoundlessLayout",
    "FixedLayout",
    "Interchange",
    "InvertibleLinear",
    "LowRankRotation",
    "RevRes",
    "Rotation",
    "gram_schmidt",
]
