"""This host's copies of S3 shards under a size cap: least recently used go first, the copy just
made never, a failed download leaves nothing, and a deleted run takes its copies along."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from gradwalk import errors
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.artifacts.host_cache import ShardCache


def _fill(size: int):
    return lambda part: part.write_bytes(b"x" * size)


def _used(cache: ShardCache, sha: str, at: float) -> None:
    os.utime(cache.path(sha), (at, at))


def test_past_the_cap_the_least_recently_used_copies_go(tmp_path):
    cache = ShardCache(tmp_path / "copies", max_bytes=2_500)
    for i, sha in enumerate(("a", "b")):
        cache.put(sha, _fill(1_000))
        _used(cache, sha, 1_000 + i)  # a before b
    assert cache.get("a") is not None  # reading a makes b the least recently used
    cache.put("c", _fill(1_000))
    assert [cache.get(sha) is not None for sha in "abc"] == [True, False, True]
    assert cache.size() == 2_000


def test_the_copy_just_made_stays_even_over_the_cap(tmp_path, caplog):
    cache = ShardCache(tmp_path / "copies", max_bytes=500)
    cache.put("a", _fill(100))
    with caplog.at_level(logging.WARNING):
        path = cache.put("big", _fill(1_000))
    assert path.read_bytes() == b"x" * 1_000 and cache.get("a") is None
    assert "one shard is bigger than the cap" in caplog.text


def test_no_cap_keeps_everything_and_a_failed_fill_leaves_nothing(tmp_path):
    cache = ShardCache(tmp_path / "copies")
    for sha in "abc":
        cache.put(sha, _fill(10_000))
    assert cache.size() == 30_000

    def broken(part):
        part.write_bytes(b"half")
        raise errors.Conflict("checksum")

    with pytest.raises(errors.Conflict):
        cache.put("d", broken)
    assert sorted(p.name for p in (tmp_path / "copies").iterdir()) == ["a.npy", "b.npy", "c.npy"]
    cache.discard(["a", "b", "never-there"])
    assert sorted(p.name for p in (tmp_path / "copies").iterdir()) == ["c.npy"]


def test_a_host_reading_runs_over_s3_keeps_its_copies_under_the_cap(s3, tmp_path):
    own = s3.model_copy(update={"artifact_url": f"{s3.artifact_url}/{tmp_path.name}", "state_dir": tmp_path / "host",
                                "artifact_cache_gb": 0})
    writer = FeatureStore.from_settings(own)
    runs = {run: np.random.default_rng(seed).normal(size=(64, 32)).astype(np.float32) for seed, run in enumerate("ab")}
    for run, x in runs.items():
        writer.write_shard(run, "train", 0, [f"{run}{i}" for i in range(32)], x[:32])
        writer.write_shard(run, "train", 1, [f"{run}{i}" for i in range(32, 64)], x[32:])
    shard_bytes = writer.shard_array(writer.manifests("a", "train")[0]).nbytes + 128  # rows + the .npy header
    reader = FeatureStore(writer.root, cache_dir=tmp_path / "reader", storage_options=writer.storage_options,
                          cache_bytes=3 * shard_bytes)  # room for three of the four shards
    assert writer.shard_copies.max_bytes is None  # 0 GB in the settings: no cap

    for run in ("a", "b", "a"):  # b's shards push a's out; a comes back from S3, checked again
        np.testing.assert_array_equal(reader.load(run, "train")[1], runs[run])
        assert reader.shard_copies.size() <= 3 * shard_bytes
    copies = {m.sha256: reader.shard_copies.get(m.sha256) is not None for m in reader.manifests("b", "train")}
    assert sum(copies.values()) == 1  # of b's two copies, the older went to make room for a's

    reader.delete_run("a")  # the run's objects, and this host's copies of its shards
    assert reader.shard_copies.size() <= shard_bytes
    with pytest.raises(errors.NotFound):
        reader.load("a", "train")
