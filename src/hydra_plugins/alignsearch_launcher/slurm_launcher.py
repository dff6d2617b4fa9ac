"""``hydra/launcher: slurm`` (``hardware=slurm``): Hydra takes launchers only from classes defined in the
``hydra_plugins`` namespace, so the launcher is named here; what it does is
:class:`alignsearch.cli.slurm_launcher.SlurmLauncher`. Hydra imports this module at every start: it stays
light (no torch)."""

from alignsearch.cli import slurm_launcher


class SlurmLauncher(slurm_launcher.SlurmLauncher):
    """:class:`alignsearch.cli.slurm_launcher.SlurmLauncher` under the name Hydra accepts."""
