"""A target's two parts: validation (what selection reads) and the held-out test part (what an
evaluation scores on), imported side by side through the REST API, never sharing an example."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gradwalk import errors
from gradwalk.platform.interfaces.cli import app
from tests.platform.conftest import records


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_test_file_lands_beside_the_validation_part(client, api_url, api_token, store, prefix, tmp_path):
    name = f"{prefix}t"
    val = _write(tmp_path / "val.jsonl", records(f"{prefix}v", 4))
    test = _write(tmp_path / "test.jsonl", records(f"{prefix}x", 3))
    report = client.import_target(name, val, test=test)
    assert (report.part, report.size, report.test.part, report.test.size) == ("validation", 4, "test", 3)
    shown = client.target(name).show()
    assert (shown.size, shown.test_size) == (4, 3)
    assert [i.part for i in shown.imports] == ["validation", "test"]

    # a test example equal to a validation one is refused by file and line, and nothing of it lands
    clash = _write(tmp_path / "clash.jsonl", records(f"{prefix}y", 2) + records(f"{prefix}v", 4)[2:3])
    with pytest.raises(errors.InvalidInput, match=r"clash.jsonl line 3: this test example has the same "
                                                  r"messages as a validation example"):
        client.import_target(name, val, test=clash)
    # ... and a validation example equal to a test one too, through the CLI
    again = _write(tmp_path / "again.jsonl", records(f"{prefix}x", 1))
    env = {"GRADWALK_API_URL": api_url, "GRADWALK_API_TOKEN": api_token}
    cli = CliRunner().invoke(app, ["target", "import", name, str(again)], env=env)
    said = cli.output + str(cli.exception)
    assert cli.exit_code != 0 and "again.jsonl line 1: this validation example" in said and "test example" in said
    assert (client.target(name).show().size, client.target(name).show().test_size) == (4, 3)

    deleted = client.target(name).delete()
    assert deleted.removed["memberships"] == 7
    assert not store.read("MATCH (n:TestExample) WHERE n.messages CONTAINS $tag RETURN n", {"tag": f"{prefix}x"})


def test_a_seeded_split_holds_out_the_same_rows_every_time(client, api_url, api_token, store, prefix, tmp_path):
    source = _write(tmp_path / "all.jsonl", records(f"{prefix}s", 10))
    parts = []
    for n in (1, 2):
        env = {"GRADWALK_API_URL": api_url, "GRADWALK_API_TOKEN": api_token}
        done = CliRunner().invoke(app, ["target", "import", f"{prefix}{n}", str(source), "--test-fraction", "0.3",
                                        "--seed", "7", "--json"], env=env)
        assert done.exit_code == 0, done.output
        report = json.loads(done.output)
        assert (report["size"], report["test"]["size"]) == (7, 3)
        parts.append([{r["id"] for r in store.read(
            f"MATCH (n:{label})-[:{rel}]->(:Target {{name: $t}}) RETURN n.id AS id", {"t": f"{prefix}{n}"})}
            for label, rel in (("ValExample", "OF_TARGET"), ("TestExample", "TEST_OF"))])
    assert parts[0] == parts[1] and not parts[0][0] & parts[0][1]
    with pytest.raises(errors.InvalidInput, match="a pool has no validation or test part"), source.open("rb") as fh:
        client._json("POST", f"/pools/{prefix}p/upload", files={"file": ("all.jsonl", fh)}, data={"test_fraction": "0.5"})
