"""alignsearch's Hydra launcher plugin: Hydra takes launchers only from the ``hydra_plugins`` namespace."""
