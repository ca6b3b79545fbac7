"""Parquet in: the four shapes, folders of files, bad rows by file, row and field, skipping, reading a
batch at a time, and an upload through the client and the REST API."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gradwalk import errors
from gradwalk.platform.intake import record_sources
from gradwalk.platform.intake.ingest import ReadReport, RecordReader, read_records

PAIR = [{"role": "user", "content": "Add 2 and 3."}, {"role": "assistant", "content": "5"}]
SHAPES = {
    "alpaca": {"instruction": ["Add 2 and 3."], "input": [""], "output": ["5"]},
    "sharegpt": {"conversations": [[{"from": "human", "value": "Add 2 and 3."}, {"from": "gpt", "value": "5"}]]},
    "messages": {"messages": [PAIR]},
    "prompt_completion": {"prompt": ["Add 2 and 3."], "completion": ["5"]},
}


def write(path, columns: dict, **options) -> object:
    pq.write_table(pa.table(columns), path, **options)
    return path


def rows(n: int, tag: str = "q") -> dict:
    return {"prompt": [f"{tag} {i}" for i in range(n)], "completion": [f"a {i}" for i in range(n)],
            "source": ["hub"] * n, "lang": ["en"] * n}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_reads_from_parquet(tmp_path, shape):
    batch = read_records(write(tmp_path / f"{shape}.parquet", SHAPES[shape]))
    (record,) = batch.records
    assert (record.messages, record.shape, record.where) == (PAIR, shape, f"{tmp_path}/{shape}.parquet row 0")


def test_own_fields_and_metadata_come_along(tmp_path):
    (record, _) = read_records(write(tmp_path / "p.parquet", rows(2))).records
    assert (record.source, record.metadata) == ("hub", {"lang": "en"})


def test_a_folder_of_parquet_files_is_read_in_name_order(tmp_path):
    write(tmp_path / "train-00001.parquet", rows(2, "second"))
    write(tmp_path / "train-00000.parquet", rows(3, "first"))
    (tmp_path / "README.md").write_text("not data")
    batch = read_records(tmp_path)
    assert [r.messages[0]["content"] for r in batch.records] == ["first 0", "first 1", "first 2", "second 0", "second 1"]
    assert batch.records[3].where == f"{tmp_path}/train-00001.parquet row 0"
    with pytest.raises(errors.InvalidInput, match="split applies to datasets"):
        read_records(tmp_path, split="train")


def test_a_bad_row_is_named_by_file_row_and_field(tmp_path):
    data = rows(4)
    data["completion"][2] = ""
    path = write(tmp_path / "part.parquet", data)
    with pytest.raises(errors.InvalidInput) as caught:
        read_records(path)
    assert str(caught.value) == f"{path} row 2: field 'completion' must be a non-empty string"
    batch = read_records(path, skip_invalid=True)
    assert (batch.report.imported, batch.report.skipped) == (3, 1)
    assert batch.report.skip_reasons == [f"{path} row 2: field 'completion' must be a non-empty string"]


def test_a_broken_or_empty_parquet_file_is_refused_by_name(tmp_path):
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(errors.InvalidInput, match=r"broken\.parquet: not a readable parquet file"):
        read_records(broken)
    empty = write(tmp_path / "empty.parquet", {"prompt": pa.array([], pa.string())})
    with pytest.raises(errors.InvalidInput, match=r"empty\.parquet: no records found"):
        read_records(empty)
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    with pytest.raises(errors.InvalidInput, match=r"must hold \.parquet files or be a datasets"):
        read_records(nothing)


def test_parquet_is_known_by_its_bytes_under_any_name(tmp_path):
    path = write(tmp_path / "upload.bin", rows(2))
    assert record_sources.is_parquet(path)
    assert len(read_records(path).records) == 2


def test_a_large_file_is_read_a_batch_at_a_time(tmp_path, monkeypatch):
    """Structural: the first record comes after one batch of the first row group, no more."""
    path = write(tmp_path / "big.parquet", rows(3000), row_group_size=1000)
    assert pq.ParquetFile(path).num_row_groups == 3
    monkeypatch.setattr(record_sources, "_PARQUET_ROWS", 100)
    asked, made = [], []
    original = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        asked.append(kwargs["row_groups"])
        for batch in original(self, *args, **kwargs):
            made.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    reader = RecordReader(path)
    records = reader.records(ReadReport(source=reader.label))
    assert next(records).where.endswith("big.parquet row 0")
    assert (asked, made) == ([[0]], [100])
    assert sum(1 for _ in records) == 2999
    assert asked == [[0], [1], [2]] and set(made) == {100} and len(made) == 30


def test_batches_shrink_for_wide_rows(tmp_path, monkeypatch):
    """A row group of large rows is read in fewer rows per batch, so a batch stays near its byte budget."""
    monkeypatch.setattr(record_sources, "_PARQUET_BATCH_BYTES", 50_000)
    data = rows(40)
    data["completion"] = [f"{i} " + "x" * 10_000 for i in range(40)]
    path = write(tmp_path / "wide.parquet", data, compression="zstd")
    made = []
    original = pq.ParquetFile.iter_batches
    monkeypatch.setattr(pq.ParquetFile, "iter_batches",
                        lambda self, *a, **k: (made.append(b.num_rows) or b for b in original(self, *a, **k)))
    assert len(read_records(path).records) == 40
    assert max(made) <= 5


def test_a_parquet_file_uploads_through_the_client(client, prefix, tmp_path):
    path = write(tmp_path / "pool.parquet", rows(5, prefix))
    report = client.import_pool(f"{prefix}pool", path)
    assert (report.added, report.size, report.source) == (5, 5, "pool.parquet")
    bad = rows(3, f"{prefix}bad")
    bad["prompt"][1] = None
    bad_path = write(tmp_path / "bad.parquet", bad)
    with pytest.raises(errors.InvalidInput, match=r"bad\.parquet row 1: field 'prompt' is missing"):
        client.import_target(f"{prefix}target", bad_path)
    assert client.import_target(f"{prefix}target", bad_path, skip_invalid=True).records.skipped == 1


def test_a_parquet_bomb_upload_is_refused(api_url, api_token, prefix, tmp_path):
    import httpx

    path = write(tmp_path / "bomb.parquet", {"prompt": ["x" * (4 << 20)], "completion": ["y"]}, compression="zstd")
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {api_token}"}) as web:
        answer = web.post(f"/pools/{prefix}bomb/upload", files={"file": ("bomb.parquet", path.read_bytes())})
    assert answer.status_code == 413 and "likely bomb" in answer.json()["error"]["message"]
