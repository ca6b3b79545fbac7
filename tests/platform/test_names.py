"""The NotFound a wrong name gets, and removing a feature run's files: pure, no services."""

from __future__ import annotations

import numpy as np
import pytest

from gradwalk import errors
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.catalog.names import not_found


def test_few_names_are_all_listed_many_only_the_nearest():
    assert str(not_found("pool", "alpca", ["alpaca", "gsm8k"], "gradwalk pool list")) == \
        "no pool 'alpca'; the pools are: alpaca, gsm8k"
    many = [f"pool-{i:03d}" for i in range(50)] + ["alpaca-train"]
    message = str(not_found("pool", "alpaca-trian", many, "gradwalk pool list"))
    assert "did you mean 'alpaca-train'" in message and "lists all 51" in message and "pool-001" not in message
    assert "`gradwalk pool list` lists them" in str(not_found("pool", "zzz", many, "gradwalk pool list"))
    assert "no pools yet" in str(not_found("pool", "x", [], "gradwalk pool list"))
    assert isinstance(not_found("pool", "x", [], "l"), errors.NotFound)


def test_a_runs_files_go_and_a_second_delete_finds_nothing_left(tmp_path):
    features = FeatureStore(tmp_path)
    for shard in range(3):
        features.write_shard("fr-1", "train", shard, [f"r{shard}"], np.ones((1, 4)))
    (tmp_path / "features" / "fr-1" / "warmup").mkdir()
    (tmp_path / "features" / "fr-1" / "warmup" / "adapter.bin").write_bytes(b"x")
    features.write_shard("fr-2", "train", 0, ["r"], np.ones((1, 4)))
    assert features.delete_run("fr-1") == 7
    assert not (tmp_path / "features" / "fr-1").exists() and features.manifests("fr-2", "train")
    assert features.delete_run("fr-1") == 0
    with pytest.raises(errors.InvalidInput):
        features.delete_run("../fr-2")
