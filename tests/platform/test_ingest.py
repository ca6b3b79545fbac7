"""Reading instruction data: every shape, duplicates, every kind of bad input, HF datasets, fuzz."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradwalk import errors
from gradwalk.platform.intake import ingest
from gradwalk.platform.intake.ingest import read_records

USER, ANSWER = "Add 2 and 3.", "5"
PAIR = [{"role": "user", "content": USER}, {"role": "assistant", "content": ANSWER}]


def write_jsonl(path: Path, *records: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records),
                    encoding="utf-8")
    return path


def sha(messages: list[dict[str, str]]) -> str:
    text = json.dumps(messages, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# --- shapes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("record, messages", [
    ({"instruction": USER, "input": "", "output": ANSWER}, PAIR),
    ({"instruction": USER, "output": ANSWER}, PAIR),
    ({"instruction": "Add.", "input": "2 and 3", "output": ANSWER},
     [{"role": "user", "content": "Add.\n\n2 and 3"}, {"role": "assistant", "content": ANSWER}]),
    ({"instruction": USER, "input": None, "output": ANSWER, "system": "Be brief."},
     [{"role": "system", "content": "Be brief."}, *PAIR]),
    ({"id": "x1", "conversations": [{"from": "human", "value": USER}, {"from": "gpt", "value": ANSWER}]},
     PAIR),
    ({"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "a"},
                        {"from": "gpt", "value": "b"}, {"from": "user", "value": "c"},
                        {"from": "assistant", "value": "d"}]},
     [{"role": "system", "content": "S"}, {"role": "user", "content": "a"},
      {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
      {"role": "assistant", "content": "d"}]),
    ({"messages": [{"role": "user", "content": USER, "name": "ann"},
                   {"role": "assistant", "content": ANSWER}]}, PAIR),
    ({"prompt": USER, "completion": ANSWER}, PAIR),
])
def test_every_shape_normalises_to_messages(tmp_path, record, messages):
    batch = read_records(write_jsonl(tmp_path / "d.jsonl", record))
    [got] = batch.records
    assert got.messages == messages
    assert got.id == sha(messages) == hashlib.sha256(got.messages_json.encode()).hexdigest()
    assert json.loads(got.messages_json) == messages


def test_the_same_example_in_any_shape_has_one_id_and_collapses(tmp_path):
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        {"instruction": USER, "input": "", "output": ANSWER},
        {"conversations": [{"from": "human", "value": USER}, {"from": "gpt", "value": ANSWER}]},
        {"messages": PAIR},
        "",
        {"prompt": USER, "completion": ANSWER},
        {"prompt": USER, "completion": "6"},
    )
    batch = read_records(path)
    report = batch.report
    assert [r.where for r in batch.records] == [f"{path} line 1", f"{path} line 6"]
    assert (report.read, report.imported, report.duplicates, report.skipped) == (5, 2, 3, 0)
    assert report.shapes == {"alpaca": 1, "prompt_completion": 1}
    assert batch.records[0].id == sha(PAIR)


def test_explicit_format_is_enforced(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", {"messages": PAIR})
    assert read_records(path, fmt="messages").records[0].shape == "messages"
    with pytest.raises(errors.InvalidInput) as e:
        read_records(path, fmt="alpaca")
    assert str(e.value) == f"{path} line 1: field 'instruction' is missing"
    with pytest.raises(errors.InvalidInput, match="unknown format 'csv'"):
        read_records(path, fmt="csv")


def test_json_array_gzip_and_json_lines_in_a_json_file(tmp_path):
    records = [{"messages": PAIR}, {"prompt": "Hi", "completion": "Hello"}]
    array = tmp_path / "a.json"
    array.write_text("\ufeff[\n  " + ",\n  ".join(json.dumps(r) for r in records) + "\n]\n",
                     encoding="utf-8")
    batch = read_records(array)
    assert [r.where for r in batch.records] == [f"{array} line 2", f"{array} line 3"]

    lines = tmp_path / "l.json"  # Dataset.to_json writes JSON Lines under .json
    write_jsonl(lines, *records)
    gz = tmp_path / "l.jsonl.gz"
    gz.write_bytes(gzip.compress(lines.read_bytes()))
    for path in (lines, gz):
        assert [r.id for r in read_records(path).records] == [r.id for r in batch.records]


# --- bad input ----------------------------------------------------------------------------------

GOOD = {"messages": PAIR}
BAD_RECORDS = [
    ('{"messages": [', "not valid JSON: Expecting value (column 15)"),
    ("[1, 2]", "a record must be a JSON object, got an array"),
    ({"text": "hello"}, ("unknown shape: expected field 'messages', 'conversations', "
                         "'instruction'+'output' or 'prompt'+'completion' (fields: 'text')")),
    ({"instruction": USER}, "field 'output' is missing"),
    ({"instruction": USER, "output": None}, "field 'output' is missing"),
    ({"instruction": USER, "input": 3, "output": ANSWER}, "field 'input' must be a string, got a number"),
    ({"instruction": "  ", "output": ANSWER}, "field 'instruction' must be a non-empty string"),
    ({"prompt": USER, "completion": ["5"]}, "field 'completion' must be a non-empty string, got an array"),
    ({"conversations": "hi"}, "field 'conversations' must be a list, got a string"),
    ({"conversations": [{"from": "human", "value": USER}, "gpt: 5"]},
     "field 'conversations[1]' must be an object, got a string"),
    ({"conversations": [{"from": "human", "value": USER}, {"from": "gpt", "value": ""}]},
     "field 'conversations[1].value' must be a non-empty string"),
    ({"conversations": [{"from": "human", "value": USER}, {"from": "gpt", "value": 5}]},
     "field 'conversations[1].value' must be a non-empty string, got a number"),
    ({"conversations": [{"from": "human", "value": USER}, {"from": "tool", "value": "5"}]},
     "field 'conversations[1].from' must be one of human, gpt, system (or user, assistant), got 'tool'"),
    ({"conversations": [{"value": USER}]}, "field 'conversations[0].from' is missing"),
    ({"system": "S", "conversations": [{"from": "gpt", "value": "hi"}, {"from": "human", "value": USER}]},
     "field 'conversations[0]' must be a user message (a conversation starts with the user), got assistant"),
    ({"messages": []}, "field 'messages' must not be empty"),
    ({"messages": [{"role": "user", "content": USER}]},
     "field 'messages' must end with an assistant message, got user last"),
    ({"messages": [{"role": "system", "content": "S"}]}, "field 'messages' holds only a system message"),
    ({"messages": [*PAIR, {"role": "system", "content": "S"}, {"role": "assistant", "content": "x"}]},
     "field 'messages[2]' is a system message; only the first message may be one"),
    ({"messages": [{"role": "tool", "content": USER}]},
     "field 'messages[0].role' must be one of system, user, assistant, got 'tool'"),
    ({"messages": [{"role": "user", "content": {"text": USER}}, PAIR[1]]},
     "field 'messages[0].content' must be a non-empty string, got an object"),
    ({"messages": PAIR, "id": [1]}, "field 'id' must be a string or an integer, got an array"),
    ('{"prompt": "\\ud800", "completion": "5"}',
     "field 'prompt' is not valid Unicode (unpaired surrogate at character 0)"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON: nested too deeply"),
]


@pytest.mark.parametrize("bad, reason", BAD_RECORDS)
def test_bad_record_names_file_line_and_field(tmp_path, bad, reason):
    path = write_jsonl(tmp_path / "data.jsonl", GOOD, "", bad, {"prompt": "Hi", "completion": "Yo"})
    with pytest.raises(errors.InvalidInput) as e:
        read_records(path)
    assert str(e.value) == f"{path} line 3: {reason}"

    batch = read_records(path, skip_invalid=True)
    report = batch.report
    assert (report.read, report.imported, report.skipped) == (3, 2, 1)
    assert report.skip_reasons == [f"{path} line 3: {reason}"]


def test_non_utf8_bytes_are_reported_with_line_and_column(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"prompt": "caf\xe9", "completion": "x"}\n')
    with pytest.raises(errors.InvalidInput) as e:
        read_records(path)
    assert str(e.value) == f"{path} line 2: not valid UTF-8 (byte 0xe9 at column 16)"
    assert read_records(path, skip_invalid=True).report.skipped == 1


def test_huge_records_are_refused_without_reading_them_whole(tmp_path):
    path = write_jsonl(tmp_path / "big.jsonl", GOOD,
                       {"prompt": "x" * 5000, "completion": ANSWER},
                       {"prompt": "x" * 950, "completion": ANSWER})
    with pytest.raises(errors.InvalidInput) as e:
        read_records(path, max_record_bytes=1000)
    assert str(e.value) == f"{path} line 2: huge record: line longer than 1,000 bytes (max_record_bytes)"
    report = read_records(path, max_record_bytes=1000, skip_invalid=True).report
    assert report.imported == 1
    # The JSON line is short enough but its messages are not: measured after normalising too.
    assert report.skip_reasons[1] == (f"{path} line 3: huge record: 1,015 bytes of messages, "
                                      "over the limit of 1,000 (max_record_bytes)")
    assert read_records(path).report.imported == 3


def test_a_reused_id_on_different_content_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "ids.jsonl",
                       {"id": 7, "messages": PAIR},
                       {"id": 7, "messages": PAIR},  # the same record again: a duplicate
                       {"id": 7, "prompt": "Hi", "completion": "Yo"})
    with pytest.raises(errors.InvalidInput) as e:
        read_records(path)
    assert str(e.value) == f"{path} line 3: field 'id' repeats 7 of {path} line 1, a different record"
    report = read_records(path, skip_invalid=True).report
    assert (report.imported, report.duplicates, report.skipped) == (1, 1, 1)


def test_skip_reasons_are_capped_but_counted(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", GOOD, *([{"oops": 1}] * 50))
    report = read_records(path, skip_invalid=True).report
    assert report.skipped == 50
    assert len(report.skip_reasons) == ingest.MAX_SKIP_REASONS
    assert report.skip_reasons[-1].startswith(f"{path} line {ingest.MAX_SKIP_REASONS + 1}: unknown shape")


def test_nothing_valid_is_an_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(errors.InvalidInput, match=r"empty\.jsonl: no records found$"):
        read_records(empty)
    bad = write_jsonl(tmp_path / "bad.jsonl", {"oops": 1})
    with pytest.raises(errors.InvalidInput, match=r"bad\.jsonl: no valid records \(1 skipped; first: "):
        read_records(bad, skip_invalid=True)


def test_json_array_errors(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n {"messages": []},\n {"prompt": "Hi", "completion": "Yo"}\n]')
    with pytest.raises(errors.InvalidInput) as e:
        read_records(path)
    assert str(e.value) == f"{path} line 2: field 'messages' must not be empty"
    assert read_records(path, skip_invalid=True).report.skipped == 1

    path.write_bytes(b'[{"prompt": "Hi", "completion": "Yo"},\n{"prompt": "caf\xe9", "completion": "x"}]')
    assert read_records(path, skip_invalid=True).report.skip_reasons == [
        f"{path} line 2: not valid UTF-8 (byte 0xe9)"]

    for text, line, problem in [
        ('[\n{"prompt": "Hi", "completion": "Yo"},\n{"prompt": }]', 3, "Expecting value"),
        ('[\n{"prompt": "Hi", "completion": "Yo"}\n{"prompt": "x"}]', 3, "expected ',' or ']'"),
        ('[{"prompt": "Hi", "completion": "Yo"},\n]', 2, "Expecting value"),
        ('[{"prompt": "Hi", "completion": "Yo"}]\n\n[]', 3, "extra data after the array"),
    ]:
        path.write_text(text)
        with pytest.raises(errors.InvalidInput) as e:  # the parser cannot resync: never skipped
            read_records(path, skip_invalid=True)
        assert str(e.value).startswith(f"{path} line {line}: not valid JSON: {problem}")


def test_source_errors(tmp_path):
    with pytest.raises(errors.InvalidInput, match="no such file or folder"):
        read_records(tmp_path / "missing.jsonl")
    with pytest.raises(errors.InvalidInput, match="must hold .parquet files or be a datasets save_to_disk folder"):
        read_records(tmp_path)
    with pytest.raises(errors.InvalidInput, match="cannot read records from a int"):
        read_records(3)
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(errors.InvalidInput, match="broken.jsonl.gz: cannot read the file"):
        read_records(broken)


def test_a_list_of_records(tmp_path):
    with pytest.raises(errors.InvalidInput) as e:
        read_records([{"messages": PAIR}, {"prompt": USER}])
    assert str(e.value) == "records[1]: field 'completion' is missing"
    batch = read_records([{"messages": PAIR}, {"prompt": USER, "completion": ANSWER}])
    assert batch.report.duplicates == 1 and batch.report.source == "records"


# --- Hugging Face datasets ----------------------------------------------------------------------

def test_save_to_disk_folder_round_trip(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [{"instruction": USER, "input": "", "output": ANSWER},
            {"instruction": "Say hi.", "input": "", "output": "Hi!"}]
    folder = tmp_path / "alpaca_ds"
    datasets.Dataset.from_list(rows).save_to_disk(str(folder))
    from_file = read_records(write_jsonl(tmp_path / "same.jsonl", *rows))
    batch = read_records(folder)
    assert [r.id for r in batch.records] == [r.id for r in from_file.records]
    assert batch.records[1].where == f"{folder} row 1"
    assert batch.report.source == str(folder)

    both = tmp_path / "dict_ds"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_list(rows),
        "validation": datasets.Dataset.from_list([{"instruction": "Q", "input": "", "output": ""}]),
    }).save_to_disk(str(both))
    with pytest.raises(errors.InvalidInput, match="has splits train, validation; choose one with split="):
        read_records(both)
    with pytest.raises(errors.InvalidInput, match="no split 'test'"):
        read_records(both, split="test")
    assert read_records(both, split="train").report.imported == 2
    with pytest.raises(errors.InvalidInput) as e:
        read_records(both, split="validation")
    assert str(e.value) == f"{both} split 'validation' row 0: field 'output' must be a non-empty string"


def test_datasets_objects_with_mixed_shapes(tmp_path):
    datasets = pytest.importorskip("datasets")
    # Mixing shapes in one table gives every row every column, the absent ones as None.
    ds = datasets.Dataset.from_list([
        {"messages": PAIR, "prompt": None, "completion": None},
        {"messages": None, "prompt": "Hi", "completion": "Yo"},
    ])
    assert read_records(ds).report.shapes == {"messages": 1, "prompt_completion": 1}
    dd = datasets.DatasetDict({"test": ds})
    assert read_records(dd).report.imported == 2
    assert read_records(ds.to_iterable_dataset()).report.imported == 2
    with pytest.raises(errors.InvalidInput, match="is a single dataset, not split 'train'"):
        read_records(ds, split="train")


# --- fuzz ---------------------------------------------------------------------------------------

def check_invariants(batch: ingest.ImportBatch) -> None:
    report = batch.report
    assert report.read == report.imported + report.duplicates + report.skipped
    assert len({r.id for r in batch.records}) == len(batch.records) == report.imported
    for record in batch.records:
        assert record.id == hashlib.sha256(record.messages_json.encode("utf-8")).hexdigest()
        assert record.messages[-1]["role"] == "assistant"
        assert all(m["role"] in ingest.ROLES and m["content"].strip() for m in record.messages)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["system", "user", "assistant", "human", "gpt", "tool", ""])
turns = st.lists(st.fixed_dictionaries({}, optional={
    "role": roles | json_values, "content": st.text(max_size=6) | json_values,
    "from": roles | json_values, "value": st.text(max_size=6) | json_values}), max_size=5)
texts = st.text(max_size=6)
plausible = st.one_of(
    st.builds(lambda q, a: {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]},
              texts, texts),
    st.builds(lambda t: {"conversations": [{"from": f, "value": v} for f, v in t]},
              st.lists(st.tuples(roles, texts), max_size=4)),
    st.builds(lambda i, x, o: {"instruction": i, "input": x, "output": o}, texts, texts, texts),
    st.builds(lambda p, c, s: {"prompt": p, "completion": c, "system": s}, texts, texts, texts),
)
records = st.one_of(
    plausible,
    json_values,
    st.fixed_dictionaries({}, optional={
        "messages": turns | json_values, "conversations": turns | json_values,
        "instruction": st.text(max_size=6) | json_values, "input": st.text(max_size=6) | json_values,
        "output": st.text(max_size=6) | json_values, "prompt": st.text(max_size=6) | json_values,
        "completion": st.text(max_size=6) | json_values, "system": st.text(max_size=6) | json_values,
        "id": st.integers(0, 3) | json_values}),
)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(records, max_size=8), skip=st.booleans())
def test_fuzz_records_either_read_or_raise_invalid_input(rows, skip):
    try:
        batch = read_records(rows, skip_invalid=skip, max_record_bytes=200)
    except errors.InvalidInput:
        return
    check_invariants(batch)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=300),
    st.lists(records.map(lambda r: json.dumps(r).encode()) | st.binary(max_size=40), max_size=6)
      .map(b"\n".join),
    st.lists(records, max_size=6).map(lambda rs: json.dumps(rs).encode()),
), suffix=st.sampled_from([".jsonl", ".json"]), skip=st.booleans())
def test_fuzz_files_either_read_or_raise_invalid_input(tmp_path, data, suffix, skip):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        batch = read_records(path, skip_invalid=skip, max_record_bytes=200)
    except errors.InvalidInput as e:
        assert str(e).startswith(str(path))
        return
    check_invariants(batch)
