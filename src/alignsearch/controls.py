"""The controls an alignment can run beside its IIA (``alignment.controls``, ``scan.controls``): a registry
of classes by name, each saying what it needs, how it runs and what the report says of it.

A control is a subclass of :class:`Control` registered with :func:`register_control`; ``alignment.controls``
names it, the run calls its :meth:`Control.run` after the alignment is trained, and each record gets its
validation IIA and divergence as ``iia_control_<name>`` and ``divergence_control_<name>``. ``run`` is
handed a :class:`alignsearch.search.controls.ControlRun`: the run's plan, models, seed and folder, and
the tools the built-in controls are made of (``train``, ``untrained_models``, ``shuffled_plan``,
``random_alignments``, ``trained_alignment``, ``evaluate``). A control of your own is registered before
the settings naming it are read (in a notebook, before the call; for the command line, by an entry script
that imports it and then calls ``alignsearch.cli.commands.align()``)::

    from alignsearch.controls import Control, register_control

    @register_control
    class Zero(Control):
        name = "zero"
        note = "the trained alignment swapping nothing (an all-zero mask)"

        def run(self, run):
            alignment = run.trained_alignment()
            alignment.layout.masks.zero_()  # swap nothing: the target's own answers
            return run.evaluate(alignment)

and ``alignment.controls=[zero]`` (or ``api.align(..., controls=["zero"])``) runs it. The built-in ones
(:class:`Untrained`, :class:`RandomSubspace`, :class:`Shuffled`) are registered here, so the settings know
them wherever they are read; their running lives in :mod:`alignsearch.search.controls`.
"""

from __future__ import annotations

from typing import Any, ClassVar

CONTROLS: dict[str, type[Control]] = {}
"""Every registered control by name, in the order registered (the report's columns follow it)."""


def register_control(cls: type[Control]) -> type[Control]:
    """Class decorator: make ``cls`` available by its ``name`` to ``alignment.controls`` and
    ``scan.controls`` (checked when the settings are read), the run and the report. Registering another
    class under a taken name is an error; registering the same class again (a module imported twice)
    replaces it."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a control needs a name that is an identifier, not {name!r}")
    if not isinstance(getattr(cls, "note", None), str):
        raise ValueError(f"control {name!r} needs a note (a phrase for the report)")
    taken = CONTROLS.get(name)
    if taken is not None and (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"control name {name!r} is taken by {taken.__module__}.{taken.__qualname__}")
    CONTROLS[name] = cls
    return cls


def control_names() -> tuple[str, ...]:
    """The registered controls' names, in the order registered.

    >>> control_names()[:3]
    ('untrained', 'random_subspace', 'shuffled')
    """
    return tuple(CONTROLS)


class Control:
    """Base class of a control: a subclass sets ``name`` (what ``alignment.controls`` calls it, and the
    records' ``iia_control_<name>``) and ``note`` (what it is, a phrase the report's note gives after
    ``<name> =``), says what it needs, and defines :meth:`run`."""

    name: ClassVar[str]
    note: ClassVar[str]
    needs_untrained: ClassVar[bool] = False
    """It needs untrained copies of the models (``run.untrained_models()``): a run whose models have no
    untrained form (a model brought from Python without one) is refused before any work."""
    informative: ClassVar[bool] = True
    """Whether it says how selective an alignment is; ``untrained`` does not (an untrained task model
    cannot do the task: near 0 by construction), and the findings judge the informative ones."""

    def run(self, run: Any) -> dict[str, Any]:
        """Validation IIA and divergence of this control per track: ``{track name: ControlScore}``
        (``"0>0/count"``), given the run (:class:`alignsearch.search.controls.ControlRun`)."""
        raise NotImplementedError


@register_control
class Untrained(Control):
    """The same alignment, trained the same way, on freshly initialised copies of the models (same
    architecture, settings and seed, no training). It shows that the trained weights matter, not how
    selective the alignment is."""

    name = "untrained"
    note = (
        "the same alignment on untrained copies of the models (task models: near 0 by construction, an"
        " untrained model cannot do the task; a language model on text pairs: about chance over the answers)"
    )
    needs_untrained = True
    informative = False

    def run(self, run: Any) -> dict[str, Any]:
        return run.train(models=run.untrained_models())


@register_control
class RandomSubspace(Control):
    """The alignment functions as initialised (random subspaces of the same sizes), not trained: the mean
    IIA and divergence over a few draws."""

    name = "random_subspace"
    note = "untrained alignment functions (random subspaces of the same sizes)"

    def run(self, run: Any) -> dict[str, Any]:
        return run.random_alignments()


@register_control
class Shuffled(Control):
    """The alignment trained (and evaluated) on pairs whose source vectors are shuffled across pairs, so
    that the counterfactual targets no longer follow from what is swapped in: what a rotation can fit
    without a variable (a control task in the sense of probing)."""

    name = "shuffled"
    note = "trained on pairs whose source vectors are shuffled (what an alignment fits without a variable)"

    def run(self, run: Any) -> dict[str, Any]:
        return run.train(plan=run.shuffled_plan())
