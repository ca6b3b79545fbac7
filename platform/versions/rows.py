"""What a version's rows must be before they are staged: one mapping per row with an instruction
id, a rank, and the optional component, step, score and walk trajectory (predecessor, reached_by);
a bad row is refused by its index and field."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from gradwalk import errors


def _optional_int(row: Mapping[str, Any], key: str, where: str) -> int | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise errors.InvalidInput(f"{where}: {key} must be an integer or None, got {value!r}")
    return int(value)


def checked_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows in rank order, each with exactly the stored fields; bad rows refused by index."""
    if not isinstance(rows, Sequence) or isinstance(rows, (str, bytes)):
        raise errors.InvalidInput("rows must be a list of row mappings")
    if not rows:
        raise errors.InvalidInput("nothing to publish: the selection has no rows")
    checked: list[dict[str, Any]] = []
    ids, ranks = set(), set()
    for index, row in enumerate(rows):
        where = f"row {index}"
        if not isinstance(row, Mapping):
            raise errors.InvalidInput(f"{where}: must be a mapping, got {type(row).__name__}")
        instruction_id = row.get("instruction_id")
        if not isinstance(instruction_id, str) or not instruction_id:
            raise errors.InvalidInput(f"{where}: instruction_id must be a non-empty string")
        rank = _optional_int(row, "rank", where)
        if rank is None or rank < 0:
            raise errors.InvalidInput(f"{where}: rank must be an integer >= 0, got {row.get('rank')!r}")
        score = row.get("score")
        if score is not None:
            if isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(score):
                raise errors.InvalidInput(f"{where}: score must be a finite number or None, got {score!r}")
            score = float(score)
        if instruction_id in ids:
            raise errors.InvalidInput(f"{where}: instruction {instruction_id} is listed twice")
        if rank in ranks:
            raise errors.InvalidInput(f"{where}: rank {rank} is given to two rows")
        ids.add(instruction_id)
        ranks.add(rank)
        checked.append({"instruction_id": instruction_id, "rank": rank, "score": score,
                        "component": _optional_int(row, "component", where),
                        "step": _optional_int(row, "step", where), **_trajectory(row, where)})
    checked.sort(key=lambda r: r["rank"])
    return checked


def _trajectory(row: Mapping[str, Any], where: str) -> dict[str, str | None]:
    """The walk's ``predecessor`` (an instruction id, None for an anchor) and ``reached_by``."""
    out = {}
    for key in ("predecessor", "reached_by"):
        value = row.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise errors.InvalidInput(f"{where}: {key} must be a non-empty string or None, got {value!r}")
        out[key] = value
    return out
