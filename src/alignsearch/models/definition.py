"""What defines a model in memory, as a digest: what a run's identity holds for a model brought from
Python (``api.own_model``), so that a folder's results are never taken for another model's.

A zoo entry is identified by the SHA-256 of its weights file (its code is the package's). A model built
in a notebook is defined by more than its state dict: :func:`definition_sha256` hashes

- its whole state: every parameter and every buffer, persistent or not, by name, dtype, shape and value;
- the code of every class of every submodule, through its method resolution order: each method's,
  property's and nested function's source and the values its closure holds, and the class's plain
  attributes (classes of ``torch`` itself by qualified name and torch's version);
- every submodule's plain attributes (numbers, strings, booleans, None, tensors, and lists, tuples and
  dicts of them; a function by its source; other objects by their type), except those ``exclude``
  names: the attributes a forward changes itself (a call counter, a cache; :func:`attributes_changed_by`)
  are the model's own bookkeeping, not what it computes, and would make every call another model.

Two models with the same weights but another ``forward`` (a class defined again under the same name),
another attribute (``self.scale = 2.0``) or another non-persistent buffer have other digests.

Code whose source cannot be read (a class made by ``exec``, a method defined where no source is kept) is
hashed by a token that belongs to that function object in this process: the same object gives the same
digest, and a process that defines it again gives another. Such a digest starts with
:data:`CANNOT_TELL` and names the functions, so that a run finding another run's results can say it
cannot tell whether the model is the same (and runs again) rather than reuse them.

Code the model calls outside its classes (a module-level helper function) is not part of the digest.

>>> from torch import nn
>>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
>>> _ = b.load_state_dict(a.state_dict())
>>> definition_sha256(a) == definition_sha256(b)
True
>>> b.register_buffer("shift", torch.ones(2), persistent=False)  # not in the state dict
>>> definition_sha256(a) == definition_sha256(b)
False
"""

from __future__ import annotations

import hashlib
import inspect
import secrets
import types
import weakref
from collections.abc import Callable, Collection
from typing import Any

import torch
from torch import nn

CANNOT_TELL = "cannot-tell"
"""How the digest of a model with unreadable code starts: ``cannot-tell:<functions>:<sha256>``."""

_MODULE_INTERNALS = frozenset(vars(nn.Module()))
"""What every ``nn.Module`` keeps in its ``__dict__`` (parameters, buffers, submodules, hooks, mode):
the state and submodules are hashed on their own; hooks and the mode are not part of the definition."""
_TOKENS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
"""A random token per function object whose source cannot be read (never shared by two objects)."""
_SKIPPED_CLASS_KEYS = frozenset({"__dict__", "__weakref__", "__module__", "__qualname__", "__doc__"})


def definition_sha256(model: nn.Module, exclude: Collection[str] = ()) -> str:
    """The digest of everything that defines ``model``'s function (see the module's docstring): a
    SHA-256 in hex, preceded by ``cannot-tell:<functions>:`` where some code's source cannot be read.
    ``exclude``: attributes left out, as ``<module path>.<name>`` (``.calls`` for the model's own)."""
    digest = hashlib.sha256()
    unreadable: list[str] = []
    feed = _Feeder(digest, unreadable)
    for kind, named in (
        ("parameter", model.named_parameters(remove_duplicate=False)),
        ("buffer", model.named_buffers(remove_duplicate=False)),
    ):
        for name, tensor in named:
            feed.text(f"{kind}:{name}")
            feed.tensor(tensor)
    seen: set[type] = set()
    for path, module in model.named_modules(remove_duplicate=False):
        feed.text(f"module:{path}:{_qualified(type(module))}")
        for cls in type(module).__mro__:
            if cls not in seen:
                seen.add(cls)
                feed.cls(cls)
        for key in sorted(k for k in vars(module) if k not in _MODULE_INTERNALS):
            if f"{path}.{key}" not in exclude:
                feed.text(f"attribute:{path}.{key}")
                feed.value(vars(module)[key])
    if unreadable:
        return f"{CANNOT_TELL}:{','.join(sorted(set(unreadable)))}:{digest.hexdigest()}"
    return digest.hexdigest()


def attributes_changed_by(model: nn.Module, run: Callable[[], Any]) -> frozenset[str]:
    """The plain attributes (``<module path>.<name>``) that ``run`` (a forward pass of ``model``) adds,
    removes or changes: what the model keeps for itself as it runs.

    >>> class Counting(nn.Linear):
    ...     def forward(self, x):
    ...         self.calls = getattr(self, "calls", 0) + 1
    ...         return super().forward(x)
    >>> net = Counting(2, 2); net.scale = 2.0
    >>> sorted(attributes_changed_by(net, lambda: net(torch.zeros(1, 2))))
    ['.calls']
    """

    def attributes() -> dict[str, str]:
        out = {}
        for path, module in model.named_modules(remove_duplicate=False):
            for key in (k for k in vars(module) if k not in _MODULE_INTERNALS):
                digest = hashlib.sha256()
                _Feeder(digest, []).value(vars(module)[key])
                out[f"{path}.{key}"] = digest.hexdigest()
        return out

    before = attributes()
    run()
    after = attributes()
    return frozenset(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def cannot_tell(definition: Any) -> str | None:
    """The functions whose source could not be read, as a digest of :func:`definition_sha256` names them
    (None for a digest of readable code, or no digest)."""
    if not isinstance(definition, str) or not definition.startswith(f"{CANNOT_TELL}:"):
        return None
    return definition.split(":")[1]


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def _from_torch(cls: type) -> bool:
    module = getattr(cls, "__module__", "") or ""
    return cls is object or module == "torch" or module.startswith("torch.")


class _Feeder:
    """Feeds a digest with typed, delimited parts, and notes the functions whose source it cannot read."""

    def __init__(self, digest: Any, unreadable: list[str]) -> None:
        self.digest, self.unreadable = digest, unreadable
        self.functions: set[int] = set()  # fed already (a closure may hold its own function)

    def text(self, text: str) -> None:
        data = text.encode()
        self.digest.update(len(data).to_bytes(8, "little") + data)

    def tensor(self, tensor: torch.Tensor) -> None:
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        self.text(f"tensor:{flat.dtype}:{tuple(tensor.shape)}")
        self.digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")

    def cls(self, cls: type) -> None:
        """A class's code: its members' sources (a torch class by name and torch's version)."""
        if _from_torch(cls):
            self.text(f"class:{_qualified(cls)}@torch{torch.__version__}")
            return
        self.text(f"class:{_qualified(cls)}")
        for key in sorted(k for k in vars(cls) if k not in _SKIPPED_CLASS_KEYS):
            self.text(f"member:{key}")
            self.value(vars(cls)[key], owner=cls)

    def value(self, value: Any, owner: type | None = None) -> None:
        """A plain value as itself; a function by its code; anything else by its type."""
        if value is None or isinstance(value, bool | int | float | complex | str | bytes):
            self.text(f"{type(value).__name__}:{value!r}")
        elif isinstance(value, torch.Tensor):
            self.tensor(value)
        elif isinstance(value, torch.dtype | torch.device | torch.Size):
            self.text(f"{type(value).__name__}:{value}")
        elif isinstance(value, list | tuple | set | frozenset):
            items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
            self.text(f"{type(value).__name__}:{len(items)}")
            for item in items:
                self.value(item)
        elif isinstance(value, dict):
            self.text(f"dict:{len(value)}")
            for key in sorted(value, key=repr):
                self.value(key)
                self.value(value[key])
        elif isinstance(value, staticmethod | classmethod):
            self.text(type(value).__name__)
            self.value(value.__func__)
        elif isinstance(value, property):
            self.text("property")
            for part in (value.fget, value.fset, value.fdel):
                self.value(part)
        elif isinstance(value, types.FunctionType | types.MethodType):
            self.function(value)
        elif isinstance(value, type):
            self.text(f"type:{_qualified(value)}")
            if owner is not None and value.__qualname__.startswith(f"{owner.__qualname__}."):
                self.cls(value)  # a class defined inside the class: its code too
        else:
            self.text(f"object:{_qualified(type(value))}")

    def function(self, fn: Callable) -> None:
        """A function's source, its defaults and what its closure holds; a token if its source cannot be
        read (see the module's docstring)."""
        fn = inspect.unwrap(getattr(fn, "__func__", fn))
        self.text(f"function:{_qualified(fn)}")
        if id(fn) in self.functions:
            return
        self.functions.add(id(fn))
        try:
            self.text(inspect.getsource(fn))
        except Exception:  # noqa: BLE001 - no file, or not one that holds it (code compiled from a string)
            name = getattr(fn, "__qualname__", repr(fn))
            self.unreadable.append(name)
            try:
                token = _TOKENS.setdefault(fn, secrets.token_hex(16))
            except TypeError:  # not weakly referenceable: a fresh token each time (never reused)
                token = secrets.token_hex(16)
            self.text(f"unreadable:{token}")
            return
        self.value(getattr(fn, "__defaults__", None))
        self.value(getattr(fn, "__kwdefaults__", None))
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                self.value(cell.cell_contents)
            except ValueError:  # an empty cell
                self.text("empty cell")
