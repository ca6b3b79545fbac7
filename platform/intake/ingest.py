"""Instruction data in one normal form: chat messages ending with the answer, named by content.

Pools and targets arrive as JSONL/JSON files (optionally gzipped), parquet files or folders of
them, or Hugging Face datasets (a ``save_to_disk`` folder or a ``datasets`` object) in the common
shapes: Alpaca
(``instruction``/``input``/``output``), ShareGPT (``conversations`` of ``from``/``value``), OpenAI
``messages`` and ``prompt``/``completion``. Every record becomes a list of ``{"role", "content"}``
messages (system?, user first, assistant last) whose id is the sha256 of its canonical JSON, so the
same example has the same id whatever file or shape it came in, and exact duplicates collapse.

A record keeps its own fields next to its messages: ``id`` as its original id, ``source`` (which
data set or task it came from) and every other top-level field as ``metadata`` (a JSON map of at
most ``max_metadata_bytes``). A ``metadata`` object (or a string holding one, as Hugging Face
exports store it) is merged into that map, and a ``gradwalk`` object (the rank, component and
step a gradwalk export adds) is left out, so an exported version reads back with the same fields.

A bad record stops the read with :class:`gradwalk.errors.InvalidInput` naming the file, the line
(or row) and the field; with ``skip_invalid`` it is counted and skipped instead. Problems with the
source as a whole (missing file, broken JSON array, unknown split) always stop the read.
Nothing here touches Neo4j: :mod:`gradwalk.platform.intake.pools` reads a whole source with this module
before it writes anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, get_args

from gradwalk import errors
from gradwalk.platform.intake.record_sources import open_source
from gradwalk.platform.shared.schemas import Format

FORMATS: tuple[str, ...] = get_args(Format)
ROLES: tuple[str, ...] = ("system", "user", "assistant")

DEFAULT_MAX_RECORD_BYTES = 1_000_000
DEFAULT_MAX_METADATA_BYTES = 65_536
# Top-level fields that are neither messages nor metadata: the record's own id and source, the
# metadata map itself, and the block of gradwalk's own fields that its exports add.
OWN_FIELDS = ("id", "source", "metadata", "gradwalk")
MAX_SKIP_REASONS = 20

_SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
}


class _RecordError(Exception):
    """A problem with one record; the reader adds where it is."""


@dataclass(frozen=True)
class Record:
    """One normalised example: ``messages_json`` is what is stored and what ``id`` hashes."""

    id: str
    messages: list[dict[str, str]]
    messages_json: str
    shape: str
    where: str
    original_id: str | int | None = None
    source: str | None = None
    metadata_json: str | None = None  # a JSON object, None when the record has no other field

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads(self.metadata_json) if self.metadata_json else {}


@dataclass
class ReadReport:
    """What one pass over a source found; ``read == imported + duplicates + skipped``."""

    source: str
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    skipped: int = 0
    skip_reasons: list[str] = field(default_factory=list)
    shapes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImportBatch:
    records: list[Record]
    report: ReadReport


def canonical_json(messages: Sequence[Mapping[str, str]]) -> str:
    """The stored form of a message list; its sha256 is the example's id."""
    return json.dumps([{"role": m["role"], "content": m["content"]} for m in messages],
                      ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def read_records(source: Any, *, fmt: Format = "auto", split: str | None = None,
                 skip_invalid: bool = False, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                 max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES) -> ImportBatch:
    """Every unique record of ``source`` in memory, with the report of the read."""
    reader = RecordReader(source, fmt=fmt, split=split, skip_invalid=skip_invalid,
                          max_record_bytes=max_record_bytes, max_metadata_bytes=max_metadata_bytes)
    report = ReadReport(source=reader.label)
    return ImportBatch(list(reader.records(report)), report)


class RecordReader:
    """A source opened for reading; each call of :meth:`records` is a fresh pass over it.

    ``source`` is a path (``.jsonl``/``.json``, optionally ``.gz``, ``.parquet``, a folder of
    ``.parquet`` files or a ``save_to_disk`` folder), a ``datasets`` Dataset/DatasetDict/IterableDataset, or a list of record dicts.
    ``split`` picks the split of a DatasetDict (needed when it has more than one).
    """

    def __init__(self, source: Any, *, fmt: Format = "auto", split: str | None = None,
                 skip_invalid: bool = False, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                 max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES, label: str | None = None) -> None:
        if fmt not in FORMATS:
            raise errors.InvalidInput(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
        if max_record_bytes < 1:
            raise errors.InvalidInput("max_record_bytes must be positive")
        if max_metadata_bytes < 2:
            raise errors.InvalidInput("max_metadata_bytes must be at least 2 (an empty map)")
        self.fmt = fmt
        self.skip_invalid = skip_invalid
        self.max_record_bytes = max_record_bytes
        self.max_metadata_bytes = max_metadata_bytes
        self.label, self.name, self._items = open_source(source, split, max_record_bytes, label)

    def records(self, report: ReadReport, *, duplicates: list[Record] | None = None) -> Iterator[Record]:
        """Yield each valid record once, counting into ``report``; raise InvalidInput on the first
        bad record (unless skipping) and when the source holds no valid record at all. Records
        whose messages came earlier in the source are appended to ``duplicates`` when it is given
        (their ids and sources are origins of the example too)."""
        seen: set[str] = set()
        named: dict[Any, tuple[str, str]] = {}
        for where, obj, problem in self._items():
            report.read += 1
            try:
                if problem is not None:
                    raise _RecordError(problem)
                record = self._normalise(obj, where)
                if obj.get("id") is not None:
                    _check_ref(obj["id"], record, named)
            except _RecordError as e:
                message = f"{where}: {e}"
                if not self.skip_invalid:
                    raise errors.InvalidInput(message) from None
                report.skipped += 1
                if len(report.skip_reasons) < MAX_SKIP_REASONS:
                    report.skip_reasons.append(message)
                continue
            if record.id in seen:
                report.duplicates += 1
                if duplicates is not None:
                    duplicates.append(record)
                continue
            seen.add(record.id)
            report.imported += 1
            report.shapes[record.shape] = report.shapes.get(record.shape, 0) + 1
            yield record
        if report.imported == 0:
            if report.skipped:
                raise errors.InvalidInput(
                    f"{self.label}: no valid records ({report.skipped} skipped; first: "
                    f"{report.skip_reasons[0]})")
            raise errors.InvalidInput(f"{self.label}: no records found")

    def _normalise(self, obj: Any, where: str) -> Record:
        if not isinstance(obj, Mapping):
            raise _RecordError(f"a record must be a JSON object, got {_kind(obj)}")
        shape = _detect(obj) if self.fmt == "auto" else self.fmt
        messages, turns_field, offset = _SHAPES[shape](obj)
        _check_turns(messages, turns_field, offset)
        text = canonical_json(messages)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise _RecordError(_bad_unicode_field(obj, shape)) from None
        if len(data) > self.max_record_bytes:
            raise _RecordError(f"huge record: {len(data):,} bytes of messages, over the limit of "
                               f"{self.max_record_bytes:,} (max_record_bytes)")
        original_id = obj.get("id")
        source = obj.get("source")
        if source is not None and not isinstance(source, str):
            raise _RecordError(f"field 'source' must be a string, got {_kind(source)}")
        metadata = _metadata_json(obj, _CONSUMED[shape], self.max_metadata_bytes)
        return Record(hashlib.sha256(data).hexdigest(), messages, text, shape, where,
                      original_id, source, metadata)


def _metadata_json(obj: Mapping[str, Any], consumed: frozenset[str], cap: int) -> str | None:
    """The record's other fields as one JSON object (keys sorted), or None when it has none.
    A field that JSON cannot hold, a key given twice, or a map over ``cap`` bytes is refused by
    name."""
    fields: dict[str, Any] = {}
    given = obj.get("metadata")
    if isinstance(given, str):
        try:
            parsed = json.loads(given)
        except ValueError:
            parsed = None
        given = parsed if isinstance(parsed, dict) else given
    if isinstance(given, Mapping):
        fields.update((str(k), v) for k, v in given.items())
    elif given is not None:
        fields["metadata"] = given
    for key, value in obj.items():
        if key in consumed or key in OWN_FIELDS:
            continue
        if key in fields:
            raise _RecordError(f"field {_shown(key)} is given both at the top level and in "
                               "'metadata'")
        fields[str(key)] = value
    if not fields:
        return None
    try:
        text = json.dumps(fields, ensure_ascii=False, allow_nan=False, sort_keys=True,
                          separators=(",", ":"))
        size = len(text.encode("utf-8"))
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError):
        text, size = "", -1
    if 0 <= size <= cap:
        return text
    sizes = {}  # only for the error: which field is bad, or the largest
    for key, value in fields.items():
        try:
            sizes[key] = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))
        except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as e:
            raise _RecordError(f"field {_shown(key)} cannot be kept as metadata ({e})") from None
    if size < 0:
        raise _RecordError("the record's other fields cannot be kept as metadata (a map with keys of "
                           "mixed types)")
    largest = max(sizes, key=sizes.__getitem__)
    raise _RecordError(f"field {_shown(largest)} is {sizes[largest]:,} bytes: the record's "
                       f"metadata is {size:,} bytes, over the limit of {cap:,} "
                       "(max_metadata_bytes)")


def _check_ref(ref: Any, record: Record, named: dict[Any, tuple[str, str]]) -> None:
    """A record's own ``id`` names one example: the same id on different content is an error."""
    if isinstance(ref, bool) or not isinstance(ref, (str, int)):
        raise _RecordError(f"field 'id' must be a string or an integer, got {_kind(ref)}")
    first_id, first_where = named.setdefault(ref, (record.id, record.where))
    if first_id != record.id:
        raise _RecordError(f"field 'id' repeats {_shown(ref)} of {first_where}, a different record")


# --- shapes -------------------------------------------------------------------------------------

# A shape turns a record into (messages, the field that lists the turns, how many messages were
# put before that list's first item) so that errors can point at the input's own indices.
_Shaped = tuple[list[dict[str, str]], str, int]


def _detect(obj: Mapping[str, Any]) -> str:
    def has(key: str) -> bool:
        return obj.get(key) is not None

    if has("messages"):
        return "messages"
    if has("conversations"):
        return "sharegpt"
    if has("instruction"):
        return "alpaca"
    if has("prompt") or has("completion"):
        return "prompt_completion"
    if has("output"):
        return "alpaca"
    keys = ", ".join(_shown(k) for k in list(obj)[:10]) or "none"
    raise _RecordError("unknown shape: expected field 'messages', 'conversations', "
                       f"'instruction'+'output' or 'prompt'+'completion' (fields: {keys})")


def _required(obj: Mapping[str, Any], key: str, path: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise _RecordError(f"field '{path}' is missing")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _RecordError(f"field '{path}' must be a non-empty string, got {_kind(value)}")
    if not value.strip():
        raise _RecordError(f"field '{path}' must be a non-empty string")
    return value


def _optional_text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _RecordError(f"field '{key}' must be a string, got {_kind(value)}")
    return value


def _system(obj: Mapping[str, Any]) -> list[dict[str, str]]:
    system = _optional_text(obj, "system")
    return [{"role": "system", "content": system}] if system.strip() else []


def _turns(obj: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = _required(obj, key, key)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise _RecordError(f"field '{key}' must be a list, got {_kind(value)}")
    if not value:
        raise _RecordError(f"field '{key}' must not be empty")
    for j, turn in enumerate(value):
        if not isinstance(turn, Mapping):
            raise _RecordError(f"field '{key}[{j}]' must be an object, got {_kind(turn)}")
    return list(value)


def _alpaca(obj: Mapping[str, Any]) -> _Shaped:
    instruction = _text(_required(obj, "instruction", "instruction"), "instruction")
    extra = _optional_text(obj, "input")
    output = _text(_required(obj, "output", "output"), "output")
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return [*_system(obj), {"role": "user", "content": user},
            {"role": "assistant", "content": output}], "output", 0


def _sharegpt(obj: Mapping[str, Any]) -> _Shaped:
    messages = _system(obj)
    offset = len(messages)
    for j, turn in enumerate(_turns(obj, "conversations")):
        speaker = _required(turn, "from", f"conversations[{j}].from")
        role = _SHAREGPT_ROLES.get(speaker.lower()) if isinstance(speaker, str) else None
        if role is None:
            raise _RecordError(f"field 'conversations[{j}].from' must be one of human, gpt, "
                               f"system (or user, assistant), got {_shown(speaker)}")
        path = f"conversations[{j}].value"
        messages.append({"role": role, "content": _text(_required(turn, "value", path), path)})
    return messages, "conversations", offset


def _messages(obj: Mapping[str, Any]) -> _Shaped:
    messages = []
    for j, turn in enumerate(_turns(obj, "messages")):
        role = _required(turn, "role", f"messages[{j}].role")
        if role not in ROLES:
            raise _RecordError(f"field 'messages[{j}].role' must be one of {', '.join(ROLES)}, "
                               f"got {_shown(role)}")
        path = f"messages[{j}].content"
        messages.append({"role": role, "content": _text(_required(turn, "content", path), path)})
    return messages, "messages", 0


def _prompt_completion(obj: Mapping[str, Any]) -> _Shaped:
    prompt = _text(_required(obj, "prompt", "prompt"), "prompt")
    completion = _text(_required(obj, "completion", "completion"), "completion")
    return [*_system(obj), {"role": "user", "content": prompt},
            {"role": "assistant", "content": completion}], "completion", 0


# The fields each shape turns into messages; every other field is the record's own.
_CONSUMED: dict[str, frozenset[str]] = {
    "alpaca": frozenset({"instruction", "input", "output", "system"}),
    "sharegpt": frozenset({"conversations", "system"}),
    "messages": frozenset({"messages"}),
    "prompt_completion": frozenset({"prompt", "completion", "system"}),
}

_SHAPES: dict[str, Callable[[Mapping[str, Any]], _Shaped]] = {
    "alpaca": _alpaca,
    "sharegpt": _sharegpt,
    "messages": _messages,
    "prompt_completion": _prompt_completion,
}


def _check_turns(messages: list[dict[str, str]], turns_field: str, offset: int) -> None:
    """Training masks the prompt and learns the answer: a system message first if at all, then
    the user, and the assistant last."""
    roles = [m["role"] for m in messages]
    for j, role in enumerate(roles[1:], start=1):
        if role == "system":
            raise _RecordError(f"field '{turns_field}[{j - offset}]' is a system message; "
                               "only the first message may be one")
    first = 1 if roles[0] == "system" else 0
    if first == len(roles):
        raise _RecordError(f"field '{turns_field}' holds only a system message")
    if roles[first] != "user":
        raise _RecordError(f"field '{turns_field}[{first - offset}]' must be a user message "
                           f"(a conversation starts with the user), got {roles[first]}")
    if roles[-1] != "assistant":
        raise _RecordError(f"field '{turns_field}' must end with an assistant message, "
                           f"got {roles[-1]} last")


def _bad_unicode_field(obj: Mapping[str, Any], shape: str) -> str:
    """Name the field holding a lone surrogate (JSON allows ``\\ud800``; UTF-8 and Neo4j don't)."""
    fields: list[tuple[str, Any]] = [("system", obj.get("system"))]
    if shape == "alpaca":
        fields += [(k, obj.get(k)) for k in ("instruction", "input", "output")]
    elif shape == "prompt_completion":
        fields += [(k, obj.get(k)) for k in ("prompt", "completion")]
    else:
        key, text_key = ("conversations", "value") if shape == "sharegpt" else ("messages", "content")
        fields += [(f"{key}[{j}].{text_key}", turn.get(text_key))
                   for j, turn in enumerate(obj[key])]
    for path, value in fields:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as e:
                return f"field '{path}' is not valid Unicode (unpaired surrogate at character {e.start})"
    return "a field is not valid Unicode (unpaired surrogate)"


def _kind(value: Any) -> str:
    names = {type(None): "null", bool: "a boolean", int: "a number", float: "a number",
             str: "a string", list: "an array", tuple: "an array", dict: "an object"}
    return names.get(type(value), "an object" if isinstance(value, Mapping)
                     else type(value).__name__)


def _shown(value: Any) -> str:
    """A value for an error message: short, and printable even if it holds a lone surrogate."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return repr(value)[:80]
    return _kind(value)
