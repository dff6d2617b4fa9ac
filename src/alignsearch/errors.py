"""Errors in user input: one line naming the key, the bad value and what is allowed."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A setting that cannot work, found before any work starts.

    >>> str(ConfigError("task.min_count", 25, "an integer <= task.max_count (20)"))
    'task.min_count=25 is not allowed: expected an integer <= task.max_count (20)'
    """

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={_show(value)} is not allowed: expected {allowed}")

    def under(self, prefix: str) -> ConfigError:
        """The same error with its key placed under a config group (``d_model`` -> ``model.d_model``);
        a key that already names the group (``model``, ``model.path``) stays as it is."""
        if self.key == prefix or self.key.startswith(f"{prefix}."):
            return self
        return ConfigError(f"{prefix}.{self.key}", self.value, self.allowed)


class ZooError(RuntimeError):
    """A zoo entry that is missing, incomplete, corrupt or made for another task."""


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def require_positive(key: str, value: Any) -> int:
    """``value`` as an int, or a ConfigError if it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(key, value, "a positive integer")
    return value


def require_probability(key: str, value: Any, *, below_one: bool = True) -> float:
    """``value`` as a float in [0, 1) (or [0, 1]), else a ConfigError."""
    upper_ok = value < 1 if below_one else value <= 1
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not upper_ok:
        raise ConfigError(key, value, "a probability in [0, 1)" if below_one else "a probability in [0, 1]")
    return float(value)
