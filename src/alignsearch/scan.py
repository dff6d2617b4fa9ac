"""``python -m alignsearch.scan <run_alignment overrides> scan.sites=[...] scan.positions=[...]``: where does
the variable live? A short alignment at every site x position, ``scan.csv``, ``scan.png`` and the best
cells (:mod:`alignsearch.search.scan`; the command: :mod:`alignsearch.cli.scan`; from Python:
:func:`alignsearch.api.scan`)."""

if __name__ == "__main__":
    from alignsearch.cli.commands import scan

    scan()
