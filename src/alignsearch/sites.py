"""``python -m alignsearch.sites``: a model's sites and their widths; the command is
:mod:`alignsearch.cli.sites`."""

from alignsearch.cli.exits import finish
from alignsearch.cli.sites import describe, main, model_sites, sites_table

__all__ = ["describe", "main", "model_sites", "sites_table"]

if __name__ == "__main__":
    finish(main())
