"""Build tasks and models from their ``_target_`` configs, and name them for the zoo.

A config node names a class and its settings::

    {"_target_": "alignsearch.models.GRU", "d_model": 64}

Errors in the settings come back as one-line :class:`ConfigError`s keyed under the config group
(``model.d_model=127 ...``).

A node read from a file others may have written (a zoo entry's ``config.yaml``, an alignment file) is
never given to Hydra: :func:`from_data` builds it from its settings, after checking that it is plain data
and that its ``_target_`` names a class of a trusted module (:func:`trusted_modules`, the registry of what
files may name) of the kind expected there (a task, a model, an alignment function or layout). Nothing of
a refused class is imported or called. ``instantiate`` is for the user's own composed configs only.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import os
import re
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

import alignsearch
from alignsearch.errors import ConfigError

CONF_DIR = Path(alignsearch.__file__).resolve().parent / "conf"
"""The Hydra config folder, shipped inside the package: ``conf/<group>/<choice>.yaml`` (the repository's
top-level ``conf`` is a link to it)."""


RUN_CONFIG = "run_alignment"
RUN_GROUPS = ("task", "training", "model")
"""Groups whose choices :func:`load_choice` composes inside :data:`RUN_CONFIG` (the others alone)."""


def group_choices(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The choices of a config group (``model`` -> ``["gru", "lstm", ...]``)."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def alignment_choices(models: int, search_dirs: Sequence[Path] | None = None) -> list[str]:
    """The ``alignment`` choices (``conf/alignment``, then those of ``search_dirs``; None: the running
    Hydra job's ``hydra.searchpath`` folders) that align ``models`` models, as their ``models`` setting
    (else ``alignment_base.yaml``'s) says: what an error lists where a run needs a one- or two-model
    alignment.

    >>> alignment_choices(2)
    ['clmas', 'latent_stitch', 'mas', 'stitch', 'unimas']
    """
    base = OmegaConf.load(CONF_DIR / "alignment_base.yaml")
    default = base.get("models") if isinstance(base, DictConfig) else None
    found: dict[str, Any] = {}
    for folder in (CONF_DIR, *(job_search_dirs() if search_dirs is None else search_dirs)):
        for choice in group_choices("alignment", Path(folder)):
            path = Path(folder) / "alignment" / f"{choice}.yaml"
            node = OmegaConf.load(path)  # a mapping, unless the file is not an alignment config at all
            found.setdefault(choice, node.get("models", default) if isinstance(node, DictConfig) else None)
    return sorted(choice for choice, n in found.items() if n == models)


def load_choice(group: str, choice: str, key: str, search_dirs: Sequence[Path] = ()) -> DictConfig:
    """The config of ``group`` choice ``choice`` (e.g. a partner's ``model``) as Hydra composes it (its
    ``defaults`` applied), found in the package's configs or ``search_dirs`` (the folders of
    ``hydra.searchpath``); a ConfigError under ``key`` for a choice that does not exist.

    >>> load_choice("task", "sameobject_mod", "partner.task").modulus
    4
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    choices = sorted({c for d in (CONF_DIR, *search_dirs) for c in group_choices(group, Path(d))})
    if choice not in choices:
        raise ConfigError(key, choice, f"one of {', '.join(choices)}")
    # the groups of a run are composed in the run's own config: a choice may change the others
    # (model=lm leaves out task and training)
    primary = RUN_CONFIG if group in RUN_GROUPS else None
    overrides = [f"{'' if primary else '+'}{group}={choice}"]
    if search_dirs:
        overrides.append(f"hydra.searchpath=[{','.join(f'file://{Path(d).resolve()}' for d in search_dirs)}]")
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app: its config repository
        return compose(primary, overrides=overrides)[group]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(primary, overrides=overrides)[group]


ENV_TRUSTED = "ALIGNSEARCH_TRUSTED_MODULES"
"""The environment variable listing modules (comma-separated dotted prefixes: ``mylab.tasks,mylab.models``)
whose classes the files alignsearch loads may name, beside those :func:`trusted_modules` trusts anyway."""

OWN_MODULE = "alignsearch"
TARGET_LINE = re.compile(r"^[ \t-]*_target_[ \t]*:[ \t]*['\"]?([\w.]+)", re.MULTILINE)
DOTTED_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
TRUST_HINT = (
    "only its own classes and those of modules your config folders name are loaded from files; "
    f"trust a module of yours with {ENV_TRUSTED}"
)


def search_path_dirs(entries: Iterable[Any]) -> tuple[Path, ...]:
    """The config folders ``hydra.searchpath`` entries add, where Hydra looks for config groups too:
    ``file://<dir>`` the folder, ``pkg://<package>`` the package's folders; other entries none. The one
    reading of ``hydra.searchpath``: for the group choices of a command line, the partner's choices, and
    the modules files may name (:func:`trusted_modules`).

    >>> search_path_dirs(["file://my_conf", "https://elsewhere"])
    (PosixPath('my_conf'),)
    """
    import importlib.util

    dirs: list[Path] = []
    for entry in entries:
        scheme, _, where = str(entry).partition("://")
        if scheme == "file":
            dirs.append(Path(where))
        elif scheme == "pkg":
            try:
                spec = importlib.util.find_spec(where.replace("/", "."))
            except (ImportError, ValueError):
                spec = None
            locations = (spec.submodule_search_locations if spec else None) or []
            dirs.extend(Path(p) for p in locations)
    return tuple(dirs)


def job_search_dirs() -> tuple[Path, ...]:
    """The ``hydra.searchpath`` folders (:func:`search_path_dirs`) of the running Hydra job; none outside
    one."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ()
    return search_path_dirs(HydraConfig.get().searchpath or ())


def trusted_modules(folders: Sequence[Path] = (), also: Iterable[str] = ()) -> tuple[str, ...]:
    """The modules whose classes a config read from a file may name (each with its submodules):
    ``alignsearch``; the modules of the ``_target_``s in the YAML files of the package's ``conf/``, of
    ``folders`` and of the running Hydra job's ``hydra.searchpath`` folders (your own configs); ``also``
    (those the caller's own config names); and those ``$ALIGNSEARCH_TRUSTED_MODULES`` lists.

    >>> "alignsearch" in trusted_modules() and "builtins" not in trusted_modules()
    True
    """
    found = {OWN_MODULE, *also, *_package_config_modules()}
    for folder in dict.fromkeys([*map(Path, folders), *job_search_dirs()]):
        found |= _modules_of(_targets_in_yaml(folder))
    found |= {m.strip() for m in os.environ.get(ENV_TRUSTED, "").split(",") if m.strip()}
    return tuple(sorted(found))


def _modules_of(targets: Iterable[str]) -> set[str]:
    return {module for module, _, _ in (t.rpartition(".") for t in targets) if module}


@functools.cache
def _package_config_modules() -> frozenset[str]:
    """The modules the package's own ``conf/`` names (read once: it does not change while running)."""
    return frozenset(_modules_of(_targets_in_yaml(CONF_DIR)))


def _targets_in_yaml(folder: Path) -> Iterator[str]:
    """The ``_target_`` paths written in the YAML files under ``folder`` (hidden folders, such as the
    ``.hydra`` of a run's output, left out)."""
    for where, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.endswith((".yaml", ".yml")):
                try:
                    text = (Path(where) / name).read_text()
                except (OSError, UnicodeDecodeError):
                    continue
                yield from TARGET_LINE.findall(text)


def target_modules(node: Any) -> set[str]:
    """The modules of the ``_target_``s in a config node (nested ones too): ``{"mylab.tasks"}``."""
    return {t.rpartition(".")[0] for _, t in _targets(_plain_node(node)) if isinstance(t, str) and "." in t}


def _plain_node(node: Any) -> Any:
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _targets(node: Any, top: bool = True) -> Iterator[tuple[bool, Any]]:
    """``(is the node's own, target)`` for every ``_target_`` Hydra would instantiate in ``node``."""
    if isinstance(node, Mapping):
        if "_target_" in node:
            yield top, node["_target_"]
        for key, value in node.items():
            if key != "_target_":
                yield from _targets(value, False)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _targets(value, False)


def _within(name: str, modules: Sequence[str]) -> bool:
    return any(name == m or name.startswith(f"{m}.") for m in modules)


def _why_untrusted(target: Any, base: type | None, trusted: Sequence[str]) -> str | None:
    if not isinstance(target, str) or not DOTTED_PATH.fullmatch(target):
        return "is not the dotted path of a class"
    if not _within(target, trusted):  # decided before anything of it is imported
        return f"alignsearch does not trust ({TRUST_HINT})"
    try:
        found = _locate(target)
    except Exception as e:  # noqa: BLE001 - a path that does not lead to anything
        return f"cannot be found ({type(e).__name__})"
    if not inspect.isclass(found):
        return f"is not a class ({'a ' + type(found).__name__})"
    if not _within(found.__module__, trusted):  # a class imported into a trusted module from elsewhere
        return f"is defined in {found.__module__}, a module alignsearch does not trust ({TRUST_HINT})"
    if base is not None and not _is_kind(found, base):
        return f"is not a {_kind_name(base)}"
    return None


def _locate(path: str) -> Any:
    """The object at a dotted path, importing its modules (as Hydra does for a ``_target_``)."""
    parts = path.split(".")
    found: Any = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=2):
        try:
            found = getattr(found, part)
        except AttributeError:
            if not isinstance(found, types.ModuleType):
                raise
            found = importlib.import_module(".".join(parts[:i]))
    return found


def _protocol_methods(base: type) -> list[str]:
    return [n for n, v in vars(base).items() if callable(v) and not n.startswith("_")]


def _is_kind(cls: type, base: type) -> bool:
    if getattr(base, "_is_protocol", False):
        return all(callable(getattr(cls, name, None)) for name in _protocol_methods(base))
    return issubclass(cls, base)


def _kind_name(base: type) -> str:
    name = f"{base.__module__}.{base.__qualname__}"
    if getattr(base, "_is_protocol", False):
        return f"class with the methods of {name} ({', '.join(_protocol_methods(base))})"
    return f"subclass of {name}"


def instantiate_checked(node: Mapping | DictConfig, group: str | None, **extra: Any) -> Any:
    """``hydra.utils.instantiate``, with a ConfigError raised inside keyed under ``group`` (if given)."""
    if not isinstance(node, DictConfig):
        node = OmegaConf.create(dict(node))
    try:
        return instantiate(node, _convert_="all", **extra)
    except ConfigError as e:
        raise (e.under(group) if group else e) from None
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, ConfigError):
            raise (cause.under(group) if group else cause) from None
        if isinstance(cause, TypeError) and "unexpected keyword" in str(cause):
            raise ConfigError(
                group or "_target_", node.get("_target_"), f"known settings only ({cause})"
            ) from None
        raise


def from_data(
    node: Any,
    base: type,
    key: str,
    file: str | Path,
    trusted: Sequence[str] | None = None,
    **given: Any,
) -> Any:
    """The object a file's node describes (``{"_target_": "alignsearch.models.GRU", "d_model": 64}``),
    built without Hydra: the node must be plain data (:func:`alignsearch.file_data.plain_data`: no
    interpolation, no nested ``_target_``, no ``_partial_``), its ``_target_`` a class of its kind in a
    ``trusted`` module (the registry of what may be built: :func:`trusted_modules`), and every other key
    one of the class's constructor arguments (those ``given`` by the caller, such as a model's
    ``vocab_size``, excepted). Then the class is called with the settings and ``given``; a FileDataError
    names the file and key of what is refused, and a ConfigError of the constructor comes back keyed
    under ``key``.

    >>> from torch import nn
    >>> from alignsearch.alignment import Rotation
    >>> type(from_data({"_target_": "alignsearch.alignment.Rotation"}, nn.Module, "function", "a.pt", width=4))
    <class 'alignsearch.alignment.functions.Rotation'>
    """
    from alignsearch.file_data import FileDataError

    cls, settings = trusted_class(node, base, key, file, trusted, given=tuple(given))
    try:
        return cls(**settings, **given)
    except ConfigError as e:
        raise e.under(key) from None
    except TypeError as e:
        raise FileDataError(file, key, f"cannot build {cls.__name__} ({str(e).splitlines()[0]})") from None


def trusted_class(
    node: Any,
    base: type,
    key: str,
    file: str | Path,
    trusted: Sequence[str] | None = None,
    *,
    given: Sequence[str] = (),
) -> tuple[type, dict[str, Any]]:
    """The class a file's node names and its settings, checked as :func:`from_data` describes (``given``:
    the constructor arguments the caller gives, which the file may not); nothing is called."""
    from alignsearch.configurable import constructor_arguments
    from alignsearch.file_data import TARGET, FileDataError, plain_data

    node = plain_data(node, file, key, targets=True)
    if not isinstance(node, Mapping) or TARGET not in node:
        raise FileDataError(file, key, "names no class (_target_)")
    target = node[TARGET]
    why = _why_untrusted(target, base, trusted_modules() if trusted is None else tuple(trusted))
    if why:
        raise FileDataError(file, f"{key}._target_", f"names {target}, which {why}")
    cls = _locate(target)
    settings = {k: v for k, v in node.items() if k != TARGET}
    parameters = inspect.signature(cls.__init__).parameters
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for name in settings:
        if name in given:
            raise FileDataError(
                file, f"{key}.{name}", "is not a setting a file gives (it comes from the run)"
            )
        if not open_ended and (name not in parameters or name == "self"):
            known = ", ".join(p for p in constructor_arguments(cls) if p not in given)
            raise FileDataError(file, f"{key}.{name}", f"is not a setting of {target} (known: {known})")
    return cls, settings


def build_task(node: Mapping | DictConfig):
    """A task from its config node (``cfg.task``)."""
    return instantiate_checked(node, "task")


def build_model(node: Mapping | DictConfig, vocab_size: int):
    """A model from its config node (``cfg.model``), sized for the task's vocabulary."""
    return instantiate_checked(node, "model", vocab_size=vocab_size)


def non_default_settings(component: Any) -> dict[str, Any]:
    """Settings that differ from the class's defaults (and are not already part of its name)."""
    params = inspect.signature(type(component).__init__).parameters
    out = {}
    for key, value in component.settings().items():
        if key in getattr(component, "naming_keys", ()):
            continue
        default = params[key].default if key in params else inspect.Parameter.empty
        if isinstance(default, tuple):
            default = list(default)
        if value != default:
            out[key] = value
    return out


def settings_suffix(*components: Any) -> str:
    """A short readable suffix for non-default settings: ``-d_model64-hold_outs3_5`` (empty for defaults)."""
    parts = []
    for component in components:
        for key, value in non_default_settings(component).items():
            parts.append(f"-{key}{format_setting(value)}")
    return "".join(parts)


def format_setting(value: Any) -> str:
    """A setting's value as part of a folder name: ``[3, 5]`` -> ``3_5``, ``0.002`` -> ``0.002``."""
    if isinstance(value, (list, tuple)):
        return "_".join(format_setting(v) for v in value) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).strip("/").replace("/", "_")  # a folder name, even for a path


NOT_A_KEY = re.compile(r"Could not override '([^']+)'")
MISSING_CHOICE = re.compile(r"Could not find '([^'/]+)/([^']+)'")


def compose_checked(config_name: str, overrides: Sequence[str], *, hydra: bool = False) -> DictConfig:
    """Hydra's composition of a command's config (``hydra``: with its ``hydra`` node); a choice of a
    config group that does not exist, or an override of a key that does not exist, is a one-line
    ConfigError (listing the choices, or naming the closest key)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    overrides = list(overrides)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name=config_name):
        try:
            return compose(config_name, overrides=overrides, return_hydra_config=hydra)
        except ConfigCompositionException as e:
            missing = MISSING_CHOICE.search(str(e))
            if missing:
                group, choice = missing.groups()
                raise ConfigError(group, choice, f"one of {', '.join(group_choices(group))}") from None
            match = NOT_A_KEY.search(str(e))
            if not match:
                raise
            key = match.group(1)
            given = next((o for o in overrides if o.split("=", 1)[0] == key), None)
            if given is None:  # not an override of ours: a config file's own defaults
                raise
            rest = [o for o in overrides if o != given]
            known = sorted(flat_keys(compose(config_name, overrides=rest)))
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = (
                f"did you mean {close[0]}?"
                if close
                else "add it with +key=value only where a config reads it"
            )
            raise ConfigError(key, given.split("=", 1)[1], f"a known setting ({hint})") from None


def flat_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key of a config (``training.max_steps``, ...)."""
    if not isinstance(node, DictConfig):
        return
    for key in node:
        dotted = f"{prefix}{key!s}"
        yield dotted
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            yield from flat_keys(child, f"{dotted}.")
