"""``python -m alignsearch.zoo migrate [zoo]``: bring a zoo written by older versions up to date
(:func:`alignsearch.zoo.migration.migrate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from alignsearch.cli.exits import EXIT_FAILED_JOBS, EXIT_OK, EXIT_USAGE, failed
from alignsearch.errors import ConfigError, ZooError
from alignsearch.zoo.migration import migrate
from alignsearch.zoo.naming import zoo_root


def main(argv: list[str] | None = None) -> int:
    """``python -m alignsearch.zoo migrate [zoo]``: give old entries the names their settings give, and
    record the SHA-256 of their weights where ``entry.json`` has none."""
    parser = argparse.ArgumentParser(prog="python -m alignsearch.zoo", description=main.__doc__)
    parser.add_argument("command", choices=["migrate"])
    parser.add_argument("zoo", nargs="?", type=Path, default=zoo_root())
    args = parser.parse_args(argv)
    try:
        done = migrate(args.zoo)
    except (ZooError, ConfigError, OSError) as e:
        return failed(e, EXIT_USAGE)
    for old, new in done.renamed:
        print(f"renamed {old} -> {new.name}" if new else f"kept {old}: the entry its settings name exists")
    for path, files in done.recorded:
        print(f"recorded the SHA-256 of {', '.join(files)} in {path / 'entry.json'}")
    print(f"{sum(new is not None for _, new in done.renamed)} entries renamed under {args.zoo}")
    print(f"{len(done.recorded)} entries given the SHA-256 of their weights under {args.zoo}")
    return EXIT_FAILED_JOBS if any(new is None for _, new in done.renamed) else EXIT_OK


if __name__ == "__main__":  # python -m alignsearch.cli.zoo migrate [zoo]
    from alignsearch.cli.exits import finish

    finish(main())
