"""Names cut to a length and kept apart by a digest of the whole: zoo entry folders
(:func:`alignsearch.zoo.entry_name`), run folders (:func:`alignsearch.cli.run_dir_name`) and scan cells
(:func:`alignsearch.search.scan.cell_folder`). Each caller keeps its own length and digest size: the names
it gave before are the names of folders that exist, and must be found again."""

from __future__ import annotations

import hashlib


def with_digest(shown: str, limit: int, digest_size: int, *, of: str | None = None) -> str:
    """``shown`` cut so that with ``-`` and the hex BLAKE2b digest (``digest_size`` bytes) of ``of`` (by
    default ``shown`` itself) it is ``limit`` characters long at most: two names that differ anywhere get
    different digests, even where their cut beginnings are the same.

    >>> with_digest("a" * 20, 12, 2)
    'aaaaaaa-e494'
    >>> len(with_digest("a" * 20, 12, 2)), with_digest("b", 12, 2, of="a" * 20)
    (12, 'b-e494')
    """
    digest = hashlib.blake2b((shown if of is None else of).encode(), digest_size=digest_size).hexdigest()
    return f"{shown[: limit - len(digest) - 1]}-{digest}"
