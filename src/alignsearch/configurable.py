"""Settings that are the constructor's arguments, recorded when the object is built.

A task or a model is named in the zoo by its settings (``seed0-d_model64``), so its ``settings()`` must
hold every argument that changes what it is. Written by hand beside each constructor, a forgotten key
merges two zoo entries; here they are read off the call instead::

    class Counter(Configurable):
        settings_exclude = ("vocab_size",)  # arguments that are not settings (given by the task)

        def __init__(self, vocab_size: int, width: int = 8, layers: tuple[int, ...] = (1, 2)) -> None:
            ...

    Counter(5, width=16).settings()  # {"width": 16, "layers": (1, 2)}: defaults applied

Only the outermost constructor records (a subclass that calls ``super().__init__`` records its own
arguments), after it returned (an object whose constructor failed has none). ``settings_canonical``
maps an argument to a function giving its canonical value (``hold_outs`` sorted), so that equal
settings read the same whichever way they were written.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar


class Configurable:
    """Base class (or mixin) whose :meth:`settings` are the arguments its constructor was called with."""

    settings_exclude: ClassVar[tuple[str, ...]] = ()
    """Constructor arguments that are not settings (``vocab_size``: it comes from the task)."""
    settings_canonical: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    """Argument -> function giving its canonical value (applied to the recorded value)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_records_arguments", False):
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            bound = signature.bind(self, *args, **kwargs)  # a wrong call fails here, as it would unwrapped
            init(self, *args, **kwargs)
            if type(self).__init__ is __init__:  # the outermost constructor
                bound.apply_defaults()
                self._constructor_arguments = _arguments(signature, bound)

        vars(__init__)["_records_arguments"] = True
        cls.__init__ = __init__  # type: ignore[method-assign]  # the point: the recording constructor

    def settings(self) -> dict[str, Any]:
        """The constructor's arguments (defaults applied), less :attr:`settings_exclude`, each in its
        canonical form."""
        recorded = self.__dict__.get("_constructor_arguments")
        if recorded is None:
            raise TypeError(
                f"{type(self).__name__} defines no __init__ whose arguments could be its settings"
            )
        out = {}
        for key, value in recorded.items():
            if key in self.settings_exclude:
                continue
            canonical = self.settings_canonical.get(key)
            out[key] = _copied(value) if canonical is None else canonical(_copied(value))
        return out


def _arguments(signature: inspect.Signature, bound: inspect.BoundArguments) -> dict[str, Any]:
    """The bound arguments by name, ``self`` dropped and ``**kwargs`` spread out; containers copied, so
    that a caller changing a list later changes nothing here."""
    out: dict[str, Any] = {}
    for i, (name, value) in enumerate(bound.arguments.items()):
        if i == 0:
            continue  # self
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        else:
            out[name] = value
    return {k: _copied(v) for k, v in out.items()}


def _copied(value: Any) -> Any:
    """Lists, tuples, sets and dicts copied all the way down; anything else as it is (no deep copy of a
    tensor or a module handed to a constructor)."""
    if type(value) in (list, tuple, set, frozenset):
        return type(value)(_copied(v) for v in value)
    if type(value) is dict:
        return {k: _copied(v) for k, v in value.items()}
    return value


def constructor_arguments(cls: type) -> list[str]:
    """The names of ``cls``'s constructor arguments (``self``, ``*args`` and ``**kwargs`` left out)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # type: ignore[misc]
    return [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def missing_settings(component: Any) -> list[str]:
    """Constructor arguments of ``component`` that its ``settings()`` leaves out (and that are not excluded
    on purpose): each would let two different objects share a zoo name."""
    excluded = getattr(component, "settings_exclude", ())
    given = component.settings()
    return [a for a in constructor_arguments(type(component)) if a not in excluded and a not in given]
