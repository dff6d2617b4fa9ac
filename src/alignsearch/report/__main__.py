"""``python -m alignsearch.report <folder>``: the report command (:mod:`alignsearch.cli.report`)."""

if __name__ == "__main__":
    from alignsearch.cli.exits import finish
    from alignsearch.cli.report import main

    finish(main())
