"""Errors in user input: one line naming the key, the bad value and what is allowed."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A setting that cannot work, found before any work starts.

    >>> str(ConfigError("task.min_count", 25, "an integer <= task.max_count (20)"))
    'task.min_count=25 is not allowed: expected an integer <= task.max_count (20)'
    """

    def __init__(self, key: str, value: Any, allowed: str, expects: tuple[type, ...] = ()) -> None:
        self.key, self.value, self.allowed, self.expects = key, value, allowed, expects
        super().__init__(f"{key}={_show(value)} is not allowed: expected {allowed}")

    def as_argument(self, name: str) -> ConfigError:
        """The same error for a Python caller's argument ``name``: the value as Python writes it, and its
        type where the rule expects another (``expects``).

        >>> str(ConfigError("n_units", "16", "an integer in [1, 128]", expects=(int,)).as_argument("n_units"))
        "n_units='16' is a str: expected an integer in [1, 128]"
        """
        return ArgumentError(name, self.value, self.allowed, self.expects)

    def under(self, prefix: str) -> ConfigError:
        """The same error with its key placed under a config group (``d_model`` -> ``model.d_model``);
        a key that already names the group (``model``, ``model.path``) stays as it is."""
        if self.key == prefix or self.key.startswith(f"{prefix}."):
            return self
        return ConfigError(f"{prefix}.{self.key}", self.value, self.allowed)


class ArgumentError(ConfigError):
    """A ConfigError about an argument of a Python call, showing the value as Python writes it."""

    def __init__(self, key: str, value: Any, allowed: str, expects: tuple[type, ...] = ()) -> None:
        super().__init__(key, value, allowed, expects)
        wrong_type = expects and (isinstance(value, bool) or not isinstance(value, expects))
        type_name = type(value).__name__
        article = "an" if type_name[:1].lower() in "aeiou" else "a"
        kind = f" is {article} {type_name}:" if wrong_type and value is not None else " is not allowed:"
        self.args = (f"{key}={shorten(repr(value))}{kind} expected {allowed}",)

    def __str__(self) -> str:
        return self.args[0]


class ZooError(RuntimeError):
    """A zoo entry that is missing, incomplete, corrupt or made for another task."""


SHOWN_CHARACTERS = 200
"""How much of a value an error line shows: a value read from a file can be megabytes long."""


def _show(value: Any) -> str:
    """A value as an error line shows it, cut to :data:`SHOWN_CHARACTERS`.

    >>> _show(["a", "b"])
    '[a,b]'
    >>> len(_show(list(range(10**6)))) < 260
    True
    """
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        shown = "[" + ",".join(shorten(str(v)) for v in items[:50]) + "]"
        if len(items) > 50 or len(shown) > SHOWN_CHARACTERS:
            return f"{shown[:SHOWN_CHARACTERS]}... ({len(items)} items)]"
        return shown
    return shorten(str(value))


def shorten(text: str, limit: int = SHOWN_CHARACTERS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was.

    >>> shorten("x" * 300, 10)
    'xxxxxxxxxx... (300 characters)'
    """
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def require_positive(key: str, value: Any, at_most: int | None = None) -> int:
    """``value`` as an int, or a ConfigError if it is not a positive integer (up to ``at_most``).

    >>> require_positive("max_count", 10**9, at_most=1000)
    Traceback (most recent call last):
    ...
    alignsearch.errors.ConfigError: max_count=1000000000 is not allowed: expected a positive integer up to 1000
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            key, value, "a positive integer" if at_most is None else f"a positive integer up to {at_most}"
        )
    if at_most is not None and value > at_most:
        raise ConfigError(key, value, f"a positive integer up to {at_most}")
    return value


def require_probability(key: str, value: Any, *, below_one: bool = True) -> float:
    """``value`` as a float in [0, 1) (or [0, 1]), else a ConfigError."""
    upper_ok = value < 1 if below_one else value <= 1
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not upper_ok:
        raise ConfigError(key, value, "a probability in [0, 1)" if below_one else "a probability in [0, 1]")
    return float(value)
