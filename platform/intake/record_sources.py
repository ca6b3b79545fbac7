"""Where records come from: files and datasets, read one item at a time.

A JSON Lines file is read a bounded line at a time (a huge record never fills memory), a JSON
array element by element with the line each starts on, either of them optionally gzipped; a
parquet file (or a folder of them) one bounded Arrow batch at a time, a row group never whole; a
Hugging Face dataset (a ``save_to_disk`` folder or a ``datasets`` object, one split) row by row;
a list of dicts as it is. Each item is ``(where, parsed record or None, problem or None)``: what
is wrong with one record travels with it, and :mod:`gradwalk.platform.intake.ingest` decides whether it
stops the read. Problems with the source as a whole (missing file, broken array) raise here.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from gradwalk import errors

_BOM = b"\xef\xbb\xbf"
_JSON_WS = " \t\r\n"

PARQUET_MAGIC = b"PAR1"
# A parquet batch holds about this many bytes (judged by its row group's uncompressed size per row)
# and at most _PARQUET_ROWS rows: memory stays bounded however large the file or its row groups.
_PARQUET_BATCH_BYTES = 16 << 20
_PARQUET_ROWS = 1024

# (where, parsed record or None, problem or None): one item of a source before normalising.
Item = tuple[str, Any, str | None]


def open_source(source: Any, split: str | None, cap: int,
                label: str | None = None) -> tuple[str, str, Callable[[], Iterator[Item]]]:
    """(label for messages, short name for the ``source`` property, fresh item iterator). A file or
    folder is named by its path, or by ``label`` (an upload: the name it was sent under, not the
    server's copy of it)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = label or str(source)
        name = Path(label).name
        if path.is_dir():
            parts = [] if _saved_dataset(path) else sorted(p for p in path.glob("*.parquet") if p.is_file())
            if not parts:
                dataset = _load_from_disk(path, label)
                return label, name, _dataset_items(dataset, split, label)
            _no_split(split, label)
            named = [(p, f"{label}/{p.name}") for p in parts]
            return label, name, lambda: _parquet_items(named)
        if path.is_file():
            _no_split(split, label)
            if is_parquet(path):
                return label, name, lambda: _parquet_items([(path, label)])
            return label, name, lambda: _file_items(path, label, cap)
        raise errors.InvalidInput(f"{label}: no such file or folder")
    if type(source).__module__.split(".")[0] == "datasets":
        info = getattr(source, "info", None)
        if info is None and isinstance(source, Mapping) and source:
            info = getattr(next(iter(source.values())), "info", None)
        name = (getattr(info, "dataset_name", None) or getattr(info, "builder_name", None)
                or "dataset")
        return name, name, _dataset_items(source, split, name)
    if isinstance(source, (list, tuple)):
        if split is not None:
            raise errors.InvalidInput("split applies to datasets, not to a list of records")
        return "records", "records", lambda: ((f"records[{i}]", r, None) for i, r in enumerate(source))
    raise errors.InvalidInput(
        f"cannot read records from a {type(source).__name__}: give a .jsonl/.json/.parquet file, a "
        "folder of .parquet files, a datasets save_to_disk folder, a datasets object or a list of records")


def _no_split(split: str | None, label: str) -> None:
    if split is not None:
        raise errors.InvalidInput(f"{label}: split applies to datasets, not to files")


def _saved_dataset(path: Path) -> bool:
    return any((path / marker).is_file() for marker in ("dataset_dict.json", "state.json"))


def _load_from_disk(path: Path, label: str) -> Any:
    if not _saved_dataset(path):
        raise errors.InvalidInput(f"{label}: a folder must hold .parquet files or be a datasets save_to_disk "
                                  "folder (no .parquet file, dataset_dict.json or state.json in it)")
    try:
        import datasets
    except ImportError as e:
        raise errors.GradwalkError(f"{label}: reading a datasets folder needs the 'datasets' "
                                   "package: pip install 'gradwalk[worker]'") from e
    try:
        return datasets.load_from_disk(str(path))
    except (OSError, ValueError, KeyError) as e:
        raise errors.InvalidInput(f"{label}: not a readable datasets folder: {e}") from e


def _dataset_items(dataset: Any, split: str | None, label: str) -> Callable[[], Iterator[Item]]:
    if isinstance(dataset, Mapping):  # DatasetDict / IterableDatasetDict
        names = list(dataset)
        if split is None and len(names) == 1:
            split = names[0]
        if split is None:
            raise errors.InvalidInput(f"{label}: has splits {', '.join(names)}; choose one "
                                      "with split=")
        if split not in dataset:
            raise errors.InvalidInput(f"{label}: no split {split!r} (splits: {', '.join(names)})")
        dataset = dataset[split]
    elif split is not None and str(getattr(dataset, "split", None)) != split:
        raise errors.InvalidInput(f"{label}: is a single dataset, not split {split!r}; "
                                  "leave split unset")
    else:
        split = getattr(dataset, "split", None)
    prefix = f"{label} split {str(split)!r}" if split is not None else label

    def items() -> Iterator[Item]:
        for i, row in enumerate(dataset):
            yield f"{prefix} row {i}", row, None

    return items


def is_parquet(path: Path) -> bool:
    """A parquet file by its name or by its first bytes (an upload may be sent under any name)."""
    if path.suffix == ".parquet":
        return True
    try:
        with path.open("rb") as fh:
            return fh.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC
    except OSError:
        return False  # the JSON reader says why it cannot read the file


def open_parquet(path: Path, label: str) -> pq.ParquetFile:
    """``path`` opened for streaming (its footer read, no row group yet); InvalidInput if it is no
    readable parquet file."""
    try:
        return pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
    except (pa.ArrowException, OSError) as e:
        raise errors.InvalidInput(f"{label}: not a readable parquet file: {e}") from e


def _parquet_items(parts: list[tuple[Path, str]]) -> Iterator[Item]:
    """The rows of each parquet file, row group by row group in batches sized from the group's
    own uncompressed bytes per row, so that a batch, not a group or a file, is what sits in
    memory. Rows are named by their index in the file, as a dataset's rows are."""
    for path, label in parts:
        reader = open_parquet(path, label)
        row = 0
        for group in range(reader.num_row_groups):
            meta = reader.metadata.row_group(group)
            per_row = max(1, meta.total_byte_size // max(1, meta.num_rows))
            rows = max(1, min(_PARQUET_ROWS, _PARQUET_BATCH_BYTES // per_row))
            try:
                for batch in reader.iter_batches(batch_size=rows, row_groups=[group]):
                    for record in batch.to_pylist():
                        yield f"{label} row {row}", record, None
                        row += 1
            except (pa.ArrowException, OSError) as e:
                raise errors.InvalidInput(f"{label} row group {group} (from row {row}): cannot read it: {e}") from e


def _file_items(path: Path, label: str, cap: int) -> Iterator[Item]:
    """Records of a JSON array file, or of a file with one JSON record per line."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4096).removeprefix(_BOM).lstrip(_JSON_WS.encode())
            fh.seek(0)
            if not head.startswith(b"["):
                yield from _line_items(fh, label, cap)
                return
            data = fh.read().removeprefix(_BOM)
    except (OSError, EOFError, zlib.error) as e:
        reason = getattr(e, "strerror", None) or e
        raise errors.InvalidInput(f"{label}: cannot read the file: {reason}") from e
    yield from _array_items(data, label, cap)


def _line_items(fh: Any, label: str, cap: int) -> Iterator[Item]:
    """JSON Lines, read with a bounded line length so a huge record never fills memory."""
    lineno = 0
    while line := fh.readline(cap + 1):
        lineno += 1
        where = f"{label} line {lineno}"
        if len(line) > cap and not line.endswith(b"\n"):
            while (rest := fh.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield where, None, f"huge record: line longer than {cap:,} bytes (max_record_bytes)"
            continue
        if lineno == 1:
            line = line.removeprefix(_BOM)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            yield where, None, (f"not valid UTF-8 (byte 0x{line[e.start]:02x} at column "
                                f"{e.start + 1})")
            continue
        if not text.strip(_JSON_WS):
            continue
        obj, problem = _parse(text.rstrip(_JSON_WS))
        yield where, obj, problem


def _parse(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text), None
    except json.JSONDecodeError as e:
        return None, f"not valid JSON: {e.msg} (column {e.colno})"
    except RecursionError:
        return None, "not valid JSON: nested too deeply"
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        return None, f"not valid JSON: {e}"


def _array_items(data: bytes, label: str, cap: int) -> Iterator[Item]:
    """Elements of a JSON array with the line each starts on. A syntax error cannot be skipped
    (the parser cannot find the next element), a bad element can."""
    try:
        text, lossy = data.decode("utf-8"), False
    except UnicodeDecodeError:
        text, lossy = data.decode("utf-8", "surrogateescape"), True
    decoder = json.JSONDecoder()
    line, counted = 1, 0

    def line_at(pos: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    def fail(pos: int, problem: str) -> errors.InvalidInput:
        return errors.InvalidInput(f"{label} line {line_at(pos)}: {problem}")

    pos = _skip_ws(text, 0) + 1  # past "["
    pos = _skip_ws(text, pos)
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            start = pos
            try:
                obj, pos = decoder.raw_decode(text, start)
            except json.JSONDecodeError as e:
                raise fail(e.pos, f"not valid JSON: {e.msg}") from None
            except RecursionError:
                raise fail(start, "not valid JSON: nested too deeply") from None
            except ValueError as e:
                raise fail(start, f"not valid JSON: {e}") from None
            where = f"{label} line {line_at(start)}"
            span = text[start:pos]
            problem = None
            if len(span) > cap // 4 and len(span.encode("utf-8", "surrogateescape")) > cap:
                problem = f"huge record: longer than {cap:,} bytes (max_record_bytes)"
            elif lossy:
                try:
                    span.encode("utf-8", "surrogateescape").decode("utf-8")
                except UnicodeDecodeError as e:
                    problem = f"not valid UTF-8 (byte 0x{span.encode('utf-8', 'surrogateescape')[e.start]:02x})"
            yield where, (None if problem else obj), problem
            pos = _skip_ws(text, pos)
            if text.startswith(",", pos):
                pos = _skip_ws(text, pos + 1)
                continue
            if text.startswith("]", pos):
                pos += 1
                break
            raise fail(pos, "not valid JSON: expected ',' or ']' after an array element")
    if _skip_ws(text, pos) != len(text):
        raise fail(_skip_ws(text, pos), "not valid JSON: extra data after the array")


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _JSON_WS:
        pos += 1
    return pos
