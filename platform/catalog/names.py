"""The NotFound a wrong name gets: it says which names exist, so a typo is fixed without a lookup.

With a few names all of them are listed; with many, the nearest ones by :mod:`difflib`, and the
command that lists the rest.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from gradwalk import errors

LIST_ALL_UP_TO = 10
NEAREST = 5


def not_found(kind: str, name: str, existing: Sequence[str], list_command: str) -> errors.NotFound:
    """The error for ``kind`` ``name`` missing among ``existing`` (e.g. ``not_found("pool", "alpca",
    ["alpaca"], "gradwalk pool list")`` says ``did you mean 'alpaca'?``)."""
    known = sorted(set(existing))
    head = f"no {kind} {name!r}"
    if not known:
        return errors.NotFound(f"{head}: there are no {kind}s yet")
    if len(known) <= LIST_ALL_UP_TO:
        return errors.NotFound(f"{head}; the {kind}s are: {', '.join(known)}")
    nearest = difflib.get_close_matches(name, known, n=NEAREST, cutoff=0.5)
    if nearest:
        return errors.NotFound(f"{head}; did you mean {', '.join(map(repr, nearest))}? "
                               f"(`{list_command}` lists all {len(known)})")
    return errors.NotFound(f"{head} among {len(known)} {kind}s; `{list_command}` lists them")
