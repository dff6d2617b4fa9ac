"""``python -m alignsearch.zoo migrate [zoo]``: the command is :mod:`alignsearch.cli.zoo`."""

from alignsearch.cli.exits import finish
from alignsearch.cli.zoo import main

if __name__ == "__main__":
    finish(main())
