"""Writers that turn a version's rows (in rank order) into training files.

Pure Python over an iterable of row dicts (``instruction_id``, ``rank``, ``messages``,
``component``, ``step``, ``score``, and the record's own ``original_id``, ``source`` and
``metadata``): the server exports from Neo4j and the client from the REST API with the same
functions, so a file looks the same whoever wrote it. ``datasets`` is imported only by
:func:`write_hf`, and pyarrow only by :func:`write_parquet` (the file the API serves for
``load_dataset("parquet", data_files=URL)``), keeping the client light.

A JSONL or Hugging Face record is ``{messages, id, source, metadata, gradwalk: {instruction_id,
rank, component, step, score}}``: the record's own fields under the names an import reads, and
gradwalk's in a block an import leaves out, so importing an export gives back the same rows and
fields (Hugging Face stores ``metadata`` as a JSON string and ``id`` as a string). A
LLaMA-Factory file keeps its own format; each row's origin goes to a sidecar file beside it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from gradwalk import errors
from gradwalk.atomic import atomic_writer

HF_CHUNK_ROWS = 10_000
FORMATS = ("jsonl", "hf", "llamafactory")

# LLaMA-Factory's "sharegpt" formatting with OpenAI-style tags reads a leading system message as
# the system prompt, so the stored messages go out unchanged.
LLAMAFACTORY_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}

Row = Mapping[str, Any]


GRADWALK_FIELDS = ("instruction_id", "rank", "component", "step", "score")


def training_record(row: Row) -> dict[str, Any]:
    """What a JSONL file holds for one row: its messages, its own fields and gradwalk's."""
    return {"messages": row["messages"], "id": row.get("original_id"), "source": row.get("source"),
            "metadata": dict(row.get("metadata") or {}),
            "gradwalk": {name: row.get(name) for name in GRADWALK_FIELDS}}


def origin_record(row: Row) -> dict[str, Any]:
    """A sidecar line: which instruction, and whose record, one row of a training file is."""
    return {"id": row.get("original_id"), "source": row.get("source"),
            "metadata": dict(row.get("metadata") or {}),
            **{name: row.get(name) for name in GRADWALK_FIELDS}}


def jsonl_lines(rows: Iterable[Row]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(training_record(row), ensure_ascii=False) + "\n"


def write_jsonl(rows: Iterable[Row], path: str | os.PathLike[str]) -> int:
    """One ``{"messages": [...]}`` line per row; returns the number of rows written."""
    count = 0
    with atomic_writer(path) as fh:
        for line in jsonl_lines(rows):
            fh.write(line)
            count += 1
    return count


def _hf_features() -> Any:
    from datasets import Features, List, Value

    return Features({
        "messages": List({"role": Value("string"), "content": Value("string")}),
        "id": Value("string"),
        "source": Value("string"),
        "metadata": Value("string"),
        "gradwalk": {"instruction_id": Value("string"), "rank": Value("int64"),
                     "component": Value("int64"), "step": Value("int64"),
                     "score": Value("float64")},
    })


def hf_record(row: Row) -> dict[str, Any]:
    """A row as a Hugging Face record: as :func:`training_record`, with a string id and the
    metadata map as a JSON string (a column holds one type)."""
    record = training_record(row)
    if record["id"] is not None:
        record["id"] = str(record["id"])
    record["metadata"] = json.dumps(record["metadata"], ensure_ascii=False, sort_keys=True)
    return record


def hf_batches(rows: Iterable[Row], size: int | None = None) -> Iterator[list[dict[str, Any]]]:
    """The rows as :func:`hf_record` lists of at most ``size`` (default :data:`HF_CHUNK_ROWS`),
    in order: what the Hugging Face and parquet writers hold in memory at a time."""
    size = size or HF_CHUNK_ROWS
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(hf_record(row))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_hf(rows: Iterable[Row], path: str | os.PathLike[str] | None = None) -> Any:
    """A ``datasets.Dataset`` of the rows (columns: messages, id, source, metadata, gradwalk),
    saved with ``save_to_disk(path)`` when a path is given."""
    try:
        import datasets
    except ImportError as e:
        raise errors.GradwalkError("exporting a Hugging Face dataset needs the 'datasets' package: "
                                   "pip install datasets") from e
    features = _hf_features()
    parts = [datasets.Dataset.from_list(chunk, features=features) for chunk in hf_batches(rows)]
    if not parts:
        parts.append(datasets.Dataset.from_dict({name: [] for name in features}, features=features))
    table = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    if path is not None:
        table.save_to_disk(str(path))
    return table


def _arrow_schema() -> Any:
    """The Hugging Face record's columns as Arrow types (what ``datasets`` reads back as
    :func:`_hf_features`)."""
    import pyarrow as pa

    return pa.schema([
        ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("id", pa.string()),
        ("source", pa.string()),
        ("metadata", pa.string()),
        ("gradwalk", pa.struct([("instruction_id", pa.string()), ("rank", pa.int64()),
                                ("component", pa.int64()), ("step", pa.int64()), ("score", pa.float64())])),
    ])


def write_parquet(rows: Iterable[Row], path: str | os.PathLike[str]) -> int:
    """One parquet file of the rows in order, with the Hugging Face record's columns (messages,
    id, source, metadata as a JSON string, gradwalk), one row group per :data:`HF_CHUNK_ROWS`
    rows, so memory holds one batch at a time. Written whole or not at all; returns the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema()
    count = 0
    with atomic_writer(path, binary=True) as fh, pq.ParquetWriter(fh, schema, compression="zstd") as writer:
        for chunk in hf_batches(rows):
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))  # a row group each
            count += len(chunk)
    return count


def llamafactory_entry(file_name: str) -> dict[str, Any]:
    """The ``dataset_info.json`` entry that tells LLaMA-Factory how to read the data file."""
    return {"file_name": file_name, "formatting": "sharegpt", "columns": {"messages": "messages"},
            "tags": dict(LLAMAFACTORY_TAGS)}


def write_llamafactory(rows: Iterable[Row], folder: str | os.PathLike[str], name: str) -> Path:
    """``<folder>/<name>.json`` (a JSON array of ``{"messages"}`` records), the ``name`` entry
    merged into ``<folder>/dataset_info.json`` (other entries kept), and
    ``<folder>/<name>.origins.jsonl``: line n is the origin of record n (original id, source,
    metadata, instruction id, rank, component, step, score). Returns the data file."""
    root = Path(folder)
    data_file = root / f"{name}.json"
    origins_file = root / f"{name}.origins.jsonl"
    info_file = root / "dataset_info.json"
    info: dict[str, Any] = {}
    if info_file.exists():
        try:
            info = json.loads(info_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise errors.InvalidInput(f"{info_file}: cannot read it as JSON ({e}); fix or remove it") from e
        if not isinstance(info, dict):
            raise errors.InvalidInput(f"{info_file}: must hold a JSON object of dataset entries")
    with atomic_writer(data_file) as fh, atomic_writer(origins_file) as sidecar:
        fh.write("[")
        for i, row in enumerate(rows):
            fh.write(",\n" if i else "\n")
            fh.write(json.dumps({"messages": row["messages"]}, ensure_ascii=False))
            sidecar.write(json.dumps(origin_record(row), ensure_ascii=False) + "\n")
        fh.write("\n]\n")
    info[name] = llamafactory_entry(data_file.name)
    with atomic_writer(info_file) as fh:
        json.dump(info, fh, ensure_ascii=False, indent=2)
        fh.write("\n")
    return data_file


def write(fmt: str, rows: Iterable[Row], dest: str | os.PathLike[str], name: str) -> Path:
    """Write ``rows`` as ``jsonl`` (file ``dest``), ``hf`` (save_to_disk folder ``dest``) or
    ``llamafactory`` (``<name>.json`` and its ``dataset_info.json`` entry in folder ``dest``);
    returns the file or folder written."""
    if fmt == "jsonl":
        write_jsonl(rows, dest)
    elif fmt == "hf":
        write_hf(rows, dest)
    elif fmt == "llamafactory":
        return write_llamafactory(rows, dest, name)
    else:
        raise errors.InvalidInput(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return Path(dest)
