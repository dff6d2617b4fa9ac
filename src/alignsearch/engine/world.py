"""A call of the Python API leaves the caller's world as it found it.

A notebook trains its own model, seeds its own generators and sets its own threads, warnings and loggers;
then it calls ``api.align``. The run core reseeds torch, Python and numpy (Lightning's
``seed_everything``), sets ``PL_GLOBAL_SEED``, adds warnings filters, quiets two Lightning loggers,
sets torch's threads, and freezes the models it runs (eval mode, no gradients). :func:`as_found` around a
public function of the API puts all of it back when the call ends, on success, on an error and on an
interrupt:

* the random generators: torch's CPU generator (and CUDA's: its states where CUDA was initialised, else
  the seed it is to start from), Python's ``random``, numpy's global one;
* ``os.environ`` (keys the call added are removed, changed ones restored), the working directory,
  ``sys.stdout``/``sys.stderr``;
* ``warnings.filters``, ``warnings.showwarning`` and ``warnings.defaultaction``;
* every logger that existed (level, handlers, ``propagate``, ``disabled``) and ``logging.disable``;
* torch's threads, deterministic-algorithms flags, default dtype, float32 matmul precision, cuDNN's
  ``benchmark``/``deterministic`` flags and grad mode;
* the SIGINT and SIGTERM handlers (Lightning ignores SIGINT for good after a KeyboardInterrupt);
* every ``nn.Module`` among the arguments (in lists, tuples, dicts and dataclasses such as a zoo entry):
  frozen while the call runs, then each parameter's ``requires_grad``, each submodule's ``training`` flag,
  the tensors (device and dtype) of its parameters and buffers, and its forward hooks as they were.

A Ctrl+C inside the call reaches the caller as a :class:`KeyboardInterrupt` (Lightning turns one into
``SystemExit: 1``, and a run's own signal handling into
:class:`~alignsearch.engine.interrupt.Interrupted`), whose message says how to resume::

    @as_found
    def align(models, *, out_dir=None, ...): ...

Calls nest (``api.align`` calls ``api.own_model``): only the outermost one snapshots and restores.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import os
import random
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import torch
from torch import nn

from alignsearch.engine.interrupt import SIGNALS, Interrupted, in_main_thread

F = TypeVar("F", bound=Callable[..., Any])

CUDA_DEFAULT_SEED = 67280421310721
"""The seed a CUDA generator starts from when nothing seeded it (``c10::default_rng_seed_val``)."""
WALK_DEPTH = 4
"""How deep :func:`modules_in` looks into containers and dataclasses for modules."""
WALK_ITEMS = 64
"""How many items of one container :func:`modules_in` looks at (models come in short lists)."""
HOOKS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
)
"""A module's dicts of forward hooks (keyed by the handle's id)."""

_calls = threading.local()


# -- the models ---------------------------------------------------------------------------------------------
def modules_in(values: Iterable[Any]) -> list[nn.Module]:
    """The ``nn.Module`` objects among ``values``: themselves, or inside lists, tuples, sets, dicts and
    dataclasses (a zoo entry's model, a saved alignment's interchange), each once."""
    found: dict[int, nn.Module] = {}
    seen: set[int] = set()

    def walk(obj: Any, depth: int) -> None:
        if depth > WALK_DEPTH or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, nn.Module):
            found.setdefault(id(obj), obj)
            return
        if isinstance(obj, dict):
            items: Iterable[Any] = obj.values()
        elif isinstance(obj, list | tuple | set | frozenset):
            items = obj
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            items = [getattr(obj, f.name, None) for f in dataclasses.fields(obj)]
        else:
            return
        for i, item in enumerate(items):
            if i >= WALK_ITEMS:
                break
            walk(item, depth + 1)

    for value in values:
        walk(value, 0)
    return list(found.values())


@dataclasses.dataclass
class ModelState:
    """What a call could change of some modules: each submodule's ``training`` flag and forward hooks, each
    parameter's ``requires_grad`` and tensor, each buffer's tensor."""

    modules: list[tuple[nn.Module, bool, dict[str, set[int]]]]
    parameters: list[tuple[nn.Parameter, bool, torch.Tensor]]
    buffers: list[tuple[nn.Module, str, torch.Tensor]]

    @classmethod
    def of(cls, roots: Iterable[nn.Module]) -> ModelState:
        modules: dict[int, nn.Module] = {}
        for root in roots:
            for m in root.modules():
                modules.setdefault(id(m), m)
        parameters: dict[int, nn.Parameter] = {}
        buffers = []
        for m in modules.values():
            for p in m._parameters.values():
                if p is not None:
                    parameters.setdefault(id(p), p)
            buffers += [(m, name, b) for name, b in m._buffers.items() if b is not None]
        return cls(
            [(m, m.training, {h: set(getattr(m, h, {})) for h in HOOKS}) for m in modules.values()],
            [(p, p.requires_grad, p.data) for p in parameters.values()],
            buffers,
        )

    def freeze(self) -> None:
        """Eval mode and no gradients, as the run core runs a model (until :meth:`restore`)."""
        for m, _, _ in self.modules:
            m.training = False
        for p, _, _ in self.parameters:
            p.requires_grad_(False)

    def restore(self) -> None:
        for m, training, hooks in self.modules:
            m.training = training
            for name, keys in hooks.items():
                table = getattr(m, name, None)
                if not table:
                    continue
                for key in [k for k in table if k not in keys]:  # left by a call cut short
                    del table[key]
        for p, requires_grad, data in self.parameters:
            if not same_tensor(p.data, data):  # moved (to another device or dtype) by the call
                p.data = data
            if p.requires_grad != requires_grad:
                p.requires_grad_(requires_grad)
        for m, name, b in self.buffers:
            if m._buffers.get(name, b) is not b:
                m._buffers[name] = b


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.device == b.device and a.dtype == b.dtype and a.shape == b.shape and a.data_ptr() == b.data_ptr()


# -- the process ---------------------------------------------------------------------------------------------
def cuda_rng_state() -> tuple[str, Any]:
    """CUDA's generators: their states where CUDA is initialised, else the seeds queued for its start."""
    cuda = torch.cuda
    if cuda.is_initialized():
        return "states", cuda.get_rng_state_all()
    tracker = getattr(cuda, "_lazy_seed_tracker", None)
    if tracker is None:
        return "none", None
    return "queued", {
        key: list(value) if isinstance(value, list) else value for key, value in vars(tracker).items()
    }


def set_cuda_rng_state(state: tuple[str, Any]) -> None:
    kind, value = state
    cuda = torch.cuda
    if kind == "states":
        cuda.set_rng_state_all(value)
    elif kind == "queued":
        tracker = cuda._lazy_seed_tracker
        for key, item in value.items():
            setattr(tracker, key, list(item) if isinstance(item, list) else item)
        if cuda.is_initialized():  # started by the call: as a start with the queued seeds would leave it
            for generator in cuda.default_generators:
                generator.manual_seed(CUDA_DEFAULT_SEED)
            for call in tracker.get_calls():
                if call:
                    call[0]()


@dataclasses.dataclass
class ProcessState:
    """The process-wide settings a run changes (see the module's docstring)."""

    torch_rng: torch.Tensor
    cuda_rng: tuple[str, Any]
    python_rng: Any
    numpy_rng: Any
    environ: dict[str, str]
    cwd: str | None
    streams: tuple[Any, Any]
    warning_filters: list
    showwarning: Any
    defaultaction: str
    loggers: list[tuple[logging.Logger, int, list, bool, bool]]
    logging_disable: int
    threads: int
    deterministic: tuple[bool, bool]
    default_dtype: torch.dtype
    matmul_precision: str
    cudnn: tuple[bool, bool]
    grad: bool
    handlers: dict[int, Any]

    @classmethod
    def now(cls) -> ProcessState:
        numpy = sys.modules.get("numpy")
        manager = logging.Logger.manager
        loggers = [logging.getLogger()] + [
            lg for lg in list(manager.loggerDict.values()) if isinstance(lg, logging.Logger)
        ]
        try:
            cwd: str | None = os.getcwd()
        except OSError:
            cwd = None
        return cls(
            torch_rng=torch.get_rng_state(),
            cuda_rng=cuda_rng_state(),
            python_rng=random.getstate(),
            numpy_rng=None if numpy is None else numpy.random.get_state(),
            environ=dict(os.environ),
            cwd=cwd,
            streams=(sys.stdout, sys.stderr),
            warning_filters=list(warnings.filters),
            showwarning=warnings.showwarning,
            defaultaction=warnings.defaultaction,  # type: ignore[attr-defined]  # undocumented, read by warn()
            loggers=[(lg, lg.level, list(lg.handlers), lg.propagate, lg.disabled) for lg in loggers],
            logging_disable=manager.disable,
            threads=torch.get_num_threads(),
            deterministic=(
                torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
            ),
            default_dtype=torch.get_default_dtype(),
            matmul_precision=torch.get_float32_matmul_precision(),
            cudnn=(torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic),
            grad=torch.is_grad_enabled(),
            handlers={s: signal.getsignal(s) for s in SIGNALS} if in_main_thread() else {},
        )

    def restore(self) -> None:
        torch.set_rng_state(self.torch_rng)
        set_cuda_rng_state(self.cuda_rng)
        random.setstate(self.python_rng)
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            if self.numpy_rng is not None:
                numpy.random.set_state(self.numpy_rng)
            else:  # imported by the call (and seeded): as fresh as a first import
                numpy.random.seed()
        for key in [k for k in os.environ if k not in self.environ]:
            del os.environ[key]
        for key, value in self.environ.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        if self.cwd is not None and _cwd() != self.cwd:
            with suppress(OSError):
                os.chdir(self.cwd)
        sys.stdout, sys.stderr = self.streams
        if warnings.filters != self.warning_filters:
            warnings.resetwarnings()  # tells the warning registries that the filters changed
            warnings.filters[:] = self.warning_filters  # type: ignore[index]  # the caller's list, in place
        warnings.showwarning = self.showwarning
        warnings.defaultaction = self.defaultaction  # type: ignore[attr-defined]
        for lg, level, handlers, propagate, disabled in self.loggers:
            if lg.level != level:
                lg.setLevel(level)
            if lg.handlers != handlers:
                lg.handlers[:] = handlers
            lg.propagate, lg.disabled = propagate, disabled
        if logging.Logger.manager.disable != self.logging_disable:
            logging.disable(self.logging_disable)
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        enabled, warn_only = self.deterministic
        if (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        ) != (
            enabled,
            warn_only,
        ):
            torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        if torch.get_default_dtype() != self.default_dtype:
            torch.set_default_dtype(self.default_dtype)
        if torch.get_float32_matmul_precision() != self.matmul_precision:
            torch.set_float32_matmul_precision(self.matmul_precision)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = self.cudnn
        torch.set_grad_enabled(self.grad)
        if in_main_thread():
            for signum, handler in self.handlers.items():
                if handler is not None and signal.getsignal(signum) is not handler:
                    signal.signal(signum, handler)


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


# -- interrupts ---------------------------------------------------------------------------------------------
def interrupted_by_user(error: BaseException) -> bool:
    """A Ctrl+C, in whatever form it left the run: a KeyboardInterrupt, the run's own
    :class:`Interrupted` by SIGINT, or Lightning's ``SystemExit`` that follows a KeyboardInterrupt."""
    if isinstance(error, KeyboardInterrupt):
        return True
    if isinstance(error, Interrupted):
        return error.signum == signal.SIGINT
    if isinstance(error, SystemExit):
        seen: set[int] = set()
        cause = error.__context__
        while cause is not None and id(cause) not in seen:
            if isinstance(cause, KeyboardInterrupt):
                return True
            seen.add(id(cause))
            cause = cause.__context__
    return False


def resume_message(error: BaseException, out_dir: Any, has_out_dir: bool, again: str | None) -> str:
    """What the KeyboardInterrupt of a call says: where it stopped and how the same call goes on."""
    where = "interrupted"
    if isinstance(error, Interrupted) and error.step is not None:
        where += f" at step {error.step}"
        if error.checkpoint is not None:
            where += f" (checkpoint saved in {error.checkpoint})"
    if again is not None:
        return f"{where}; {again}"
    if has_out_dir and out_dir:
        return f"{where}; call again with the same out_dir ({out_dir}) to resume"
    if has_out_dir:
        return (
            f"{where}; without out_dir the run worked in a temporary folder, now removed: "
            "give out_dir= to make a run resumable"
        )
    return f"{where}; call again to start over"


@contextmanager
def kept(values: Iterable[Any] = (), *, freeze: bool = True) -> Iterator[None]:
    """Within: the modules among ``values`` frozen (with ``freeze``); on leaving (also on an error or an
    interrupt), they and the process as they were on entering (see the module's docstring)."""
    process = ProcessState.now()
    models = ModelState.of(modules_in(values))
    try:
        if freeze:
            models.freeze()
        yield
    finally:
        try:
            models.restore()
        finally:
            process.restore()


def as_found(fn: F | None = None, *, again: str | None = None) -> Any:
    """Decorate a public function of the API: :func:`kept` around its outermost call, over all its
    arguments; a Ctrl+C inside it reaches the caller as a KeyboardInterrupt saying how to resume (with the
    same ``out_dir`` where the function has one; ``again`` says it otherwise)."""
    if fn is None:
        return functools.partial(as_found, again=again)
    signature = inspect.signature(fn)
    has_out_dir = "out_dir" in signature.parameters

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if getattr(_calls, "depth", 0):
            return fn(*args, **kwargs)
        try:
            arguments = signature.bind(*args, **kwargs).arguments
        except TypeError:
            arguments = {"args": args, "kwargs": kwargs}
        _calls.depth = 1
        try:
            with kept(arguments.values()):
                return fn(*args, **kwargs)
        except BaseException as e:
            if not interrupted_by_user(e):
                raise
            message = resume_message(e, arguments.get("out_dir"), has_out_dir, again)
            raise KeyboardInterrupt(message).with_traceback(e.__traceback__) from None
        finally:
            _calls.depth = 0

    return call


__all__ = ["ModelState", "ProcessState", "as_found", "interrupted_by_user", "kept", "modules_in"]
