"""The model zoo: where trained task models live, and load-or-train with a file lock.

Layout (the root is ``paths.zoo_dir``, by default ``$ALIGNSEARCH_ZOO`` or ``./zoo``)::

    zoo/multiobject/gru/seed0/            task / model / seed (+ "-key value" for non-default settings)
        model.pt                          state dict, loadable with torch.load(weights_only=True)
        config.yaml                       resolved task, model, training and seed settings
        metrics.json                      val/heldout trial and token accuracy, steps, train_seconds
        entry.json                        names, vocabulary, sites, snapshots and the SHA-256 of each
                                          weights file (checked when loading)
        checkpoints/last.ckpt             Lightning state of the run's end
        snapshots/step100.pt              weights after step 100 (``training.keep_steps``), if asked for
    zoo/multiobject/gru/seed0.partial/    a run in progress (resumed from its checkpoint when rerun)
    zoo/multiobject/gru/seed0.lock        held while a process trains the entry

An entry appears in one ``rename`` when its training is complete, so a folder without ``.partial`` is
always complete.

What names an entry: its seed, and every task, model and training setting that changes the trained
weights (see :class:`alignsearch.settings.TrainingSettings` for the training settings that do not:
``checkpoint_every``, ``eval_batch_size``, ``n_heldout``, ``keep_steps``; hardware settings never do).
Settings that differ from the defaults (the class's for tasks and models, ``conf/training/default.yaml``
for training) appear in the folder name: ``seed11-max_steps100``, ``seed0-d_model32-lr0.002``. A request
finds exactly the entry its settings name or trains it; an entry whose recorded settings (``config.yaml``)
name another folder is refused, and ``python -m alignsearch.zoo migrate <zoo>`` renames such entries
(zoos written before training settings were part of the name).

What loading trusts: the weights are read as data (``weights_only``) and must be the bytes the entry was
published with (``entry.json``'s ``weights_sha256``, and ``snapshots_sha256`` per kept step; an entry of
an older zoo has none and loads unchecked until ``migrate`` records them). The task and model that
``config.yaml`` names are built only if they are classes of alignsearch or of modules your own configs name
or ``$ALIGNSEARCH_TRUSTED_MODULES`` lists: a zoo shared by others cannot make loading call anything else.
Every file of an entry is read as data (:mod:`alignsearch.file_data`): a safe loader, no interpolation,
the keys each file may hold, plain values; the task and model are built from their settings through
:func:`alignsearch.components.from_data`, never by Hydra. Symbolic links inside the zoo are refused, and
nothing is written through one.

One concept a module: :mod:`~alignsearch.zoo.naming` (entry names, identities, the folders beside an
entry), :mod:`~alignsearch.zoo.entry` (a loaded entry, weights digests, models brought from elsewhere),
:mod:`~alignsearch.zoo.loading` (read, check and load an entry), :mod:`~alignsearch.zoo.training`
(requests, load-or-train under a lock, resuming), :mod:`~alignsearch.zoo.migration` (older zoos); the
command is :mod:`alignsearch.cli.zoo`. Their names are all here: ``from alignsearch import zoo``.
"""

from __future__ import annotations

from alignsearch.errors import ConfigError, ZooError
from alignsearch.zoo.entry import OWN, ZooEntry, reinitialised, weights_digest
from alignsearch.zoo.loading import (
    CONFIG_FILE,
    ENTRY_FILES,
    ENTRY_INFO_KEYS,
    ENTRY_SETTINGS,
    MAX_SNAPSHOTS,
    SHA256,
    file_sha256,
    initial_model,
    load,
    published_digest,
    recorded_training,
    recorded_training_settings,
)
from alignsearch.zoo.migration import Migration, migrate, record_digests
from alignsearch.zoo.naming import (
    ENTRY_DIGEST_BYTES,
    ENV_ZOO,
    MAX_NAME,
    entry_name,
    entry_settings,
    first_difference,
    identity_of,
    lock_path,
    non_default_training,
    partial_path,
    same,
    short_name,
    training_suffix,
    zoo_root,
)
from alignsearch.zoo.training import (
    CHECKPOINT_ENTRY,
    ModelRequest,
    check_entry_path,
    checked_load,
    get_or_train,
    model_request,
    request,
    resume_point,
    train_into,
    weight_digests,
)


def main(argv: list[str] | None = None) -> int:
    """``python -m alignsearch.zoo migrate [zoo]``, called from Python: :func:`alignsearch.cli.zoo.main`
    (the command lives in :mod:`alignsearch.cli`; it is imported when called)."""
    from alignsearch.cli.zoo import main as command

    return command(argv)


__all__ = [
    "CHECKPOINT_ENTRY",
    "CONFIG_FILE",
    "ConfigError",
    "ENTRY_DIGEST_BYTES",
    "ENTRY_FILES",
    "ENTRY_INFO_KEYS",
    "ENTRY_SETTINGS",
    "ENV_ZOO",
    "MAX_NAME",
    "MAX_SNAPSHOTS",
    "OWN",
    "SHA256",
    "Migration",
    "ModelRequest",
    "ZooEntry",
    "ZooError",
    "check_entry_path",
    "checked_load",
    "entry_name",
    "entry_settings",
    "file_sha256",
    "first_difference",
    "get_or_train",
    "identity_of",
    "initial_model",
    "load",
    "lock_path",
    "main",
    "migrate",
    "model_request",
    "non_default_training",
    "partial_path",
    "published_digest",
    "record_digests",
    "recorded_training",
    "recorded_training_settings",
    "reinitialised",
    "request",
    "resume_point",
    "same",
    "short_name",
    "train_into",
    "training_suffix",
    "weight_digests",
    "weights_digest",
    "zoo_root",
]
