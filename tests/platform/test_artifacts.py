"""The artifact store on both of its backends, a local folder and a real S3 server (s3proxy):
shards written whole with the manifest last, a second writer that changes nothing, checksums that
catch a changed array, and a run's matrix read a shard at a time."""

from __future__ import annotations

import numpy as np
import pytest

from gradwalk import errors
from gradwalk.platform.artifacts.feature_store import FeatureStore


@pytest.fixture(params=["local", "s3"])
def features(request, tmp_path) -> FeatureStore:
    """A fresh store root per test: a folder, or a prefix of the session's S3 bucket."""
    if request.param == "local":
        return FeatureStore(tmp_path / "artifacts", cache_dir=tmp_path / "cache")
    s3 = request.getfixturevalue("s3")
    # A prefix and a host folder (its copies of what it read) of the test's own.
    own = s3.model_copy(update={"artifact_url": f"{s3.artifact_url}/{tmp_path.name}", "state_dir": tmp_path / "host"})
    store = FeatureStore.from_settings(own)
    assert store.root.startswith("s3://") and not store.files.is_local
    return store


def rows(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def test_shards_read_back_in_order_as_one_matrix_a_shard_at_a_time(features):
    a, b, c = rows(5, seed=1), rows(3, seed=2), rows(4, seed=3)
    features.write_shard("run", "train", 2, ["k", "l", "m", "n"], c)
    features.write_shard("run", "train", 0, list("abcde"), a, skipped=["z"])
    features.write_shard("run", "train", 1, list("fgh"), b)
    ids, x = features.load("run", "train")
    assert ids == list("abcdefghklmn") and np.array_equal(x, np.vstack([a, b, c]))
    matrix = features.matrix("run", "train")
    assert matrix.shape == (12, 8) and matrix.row_ids == ids
    starts = [start for start, _ in matrix.blocks()]
    assert starts == [0, 5, 8]
    assert all(isinstance(block, np.memmap) for _, block in matrix.blocks())  # never the whole matrix
    assert np.array_equal(matrix.rows(4, 9), x[4:9]) and np.array_equal(matrix.rows(11, 50), x[11:])
    assert [m.skipped for m in features.manifests("run", "train")] == [["z"], [], []]


def test_the_first_manifest_stands_and_a_second_writer_changes_nothing(features):
    first = features.write_shard("run", "train", 0, list("ab"), rows(2, seed=1))
    second = features.write_shard("run", "train", 0, list("ab"), rows(2, seed=9))  # a redelivered copy
    assert second == first
    assert np.array_equal(features.load("run", "train")[1], rows(2, seed=1))
    arrays = [k for k in features.files.keys("features/run/train") if k.endswith(".npy")]
    assert arrays == [f"features/run/train/{first.array}"]  # the loser's array is gone


def test_a_shard_without_its_manifest_is_not_finished(features):
    features.write_shard("run", "train", 0, list("ab"), rows(2))
    features.files.put("features/run/train/shard-00001-0123456789abcdef.npy", b"half of a worker's shard")
    assert features.manifest("run", "train", 1) is None
    assert [m.shard for m in features.manifests("run", "train")] == [0]
    assert features.load("run", "train")[0] == ["a", "b"]


def test_a_changed_array_fails_its_checksum(features):
    m = features.write_shard("run", "train", 0, list("ab"), rows(2))
    import io

    buffer = io.BytesIO()
    np.save(buffer, rows(2, seed=5))
    features.files.put(f"features/run/train/{m.array}", buffer.getvalue())
    with pytest.raises(errors.Conflict, match="checksum"):
        features.load("run", "train")


def test_a_run_folder_reaches_another_host_whole(features, tmp_path):
    staged = features.staging_folder("run", "warmup")
    (staged / "checkpoint-1").mkdir(parents=True)
    (staged / "checkpoint-1" / "adapter.bin").write_bytes(b"\x00weights")
    (staged / "warmup.json").write_text("{}")
    features.publish_folder("run", "warmup", "warmup.json")
    other = FeatureStore(features.root, cache_dir=tmp_path / "other-host", storage_options=features.storage_options)
    got = other.fetch_folder("run", "warmup", "warmup.json")
    assert (got / "checkpoint-1" / "adapter.bin").read_bytes() == b"\x00weights"
    with pytest.raises(errors.NotFound):
        other.fetch_folder("run", "never-published", "warmup.json")


def test_an_s3_url_that_names_no_bucket_is_refused():
    from gradwalk.settings import Settings

    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        Settings(artifact_url="/var/artifacts")


def test_services_up_runs_s3proxy_only_for_an_s3_store_on_this_host(settings):
    from gradwalk.platform.local.stack import local_services

    def names(**update) -> list[str]:
        return [s.name for s in local_services(settings.model_copy(update=update))]

    assert "s3proxy" not in names()  # a local folder needs no server
    assert "s3proxy" not in names(artifact_url="s3://b/p", s3_endpoint_url="https://s3.example.org")
    assert names(artifact_url="s3://b/p", s3_endpoint_url="http://127.0.0.1:18080")[:3] == ["neo4j", "redis", "s3proxy"]
