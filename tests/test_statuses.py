"""Every status that Cypher text spells is a member of a status enum (gradwalk/statuses.py).

Cypher strings write statuses as literals (``SET g.status = 'ready'``), so a typo there would
store a status no reader knows, and nothing else would notice: this reads every room's Python and
migration text for status literals and checks each against the enums.
"""

from __future__ import annotations

import re
from pathlib import Path

from gradwalk import statuses

ROOT = Path(__file__).resolve().parent.parent
ROOMS = ("platform", "graph", "workers", "migrations")
# status = 'x', status: 'x', status <> 'x', status IN ['x', 'y'] (any quote)
_COMPARED = re.compile(r"""status\s*(?:=|:|<>|IN)\s*(\[[^\]]*\]|'[^']*'|"[^"]*")""")
_VALUE = re.compile(r"""'([^']*)'|"([^"]*)\"""")


def _known() -> set[str]:
    return {str(member) for enum in vars(statuses).values()
            if isinstance(enum, type) and issubclass(enum, statuses.StrEnum) and enum is not statuses.StrEnum
            for member in enum}


def _literals() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for room in ROOMS:
        for path in sorted((ROOT / room).rglob("*")):
            if path.suffix not in (".py", ".cypher"):
                continue
            for match in _COMPARED.finditer(path.read_text()):
                for value in _VALUE.finditer(match.group(1)):
                    found.setdefault(value.group(1) or value.group(2), []).append(str(path.relative_to(ROOT)))
    return found


def test_every_status_literal_is_an_enum_member():
    literals = _literals()
    assert {"ready", "complete", "deleted"} <= set(literals)  # the scan reads the Cypher it is for
    unknown = {value: paths for value, paths in literals.items() if value not in _known()}
    assert not unknown, f"status literals that no enum in gradwalk/statuses.py holds: {unknown}"
