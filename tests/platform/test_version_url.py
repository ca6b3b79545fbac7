"""A version loadable by URL: its parquet file served by the session's API (token in a header or
a signed link), loaded with the real ``datasets`` library, cached under a strong ETag; and the
pieces apart (the parquet writer, link signing) without services."""

from __future__ import annotations

import io
import secrets
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gradwalk import errors
from gradwalk.platform.access import auth, links
from gradwalk.platform.interfaces.cli import app as cli_app
from gradwalk.platform.versions import exports, version_files
from gradwalk.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
RECORDS = [  # records with fields of their own: id, source and metadata must come through
    {"messages": [{"role": "user", "content": "url question A"}, {"role": "assistant", "content": "url answer A"}],
     "id": 17, "source": "hub/alpha", "topic": "maths", "level": 2},
    {"messages": [{"role": "system", "content": "be terse"}, {"role": "user", "content": "url question B"},
                  {"role": "assistant", "content": "url answer B ü"}], "id": "b-2", "source": "hub/beta"},
]


# --- without services ---------------------------------------------------------------------------

def rows(n: int) -> list[dict]:
    return [{"instruction_id": f"i{k}", "rank": k, "component": k % 2, "step": k // 2, "score": None,
             "messages": [{"role": "user", "content": f"q{k}"}, {"role": "assistant", "content": f"a{k}"}],
             "original_id": str(k) if k % 3 else None, "source": "s" if k % 2 else None,
             "metadata": {"k": k} if k % 2 else {}} for k in range(n)]


def test_the_parquet_file_holds_the_hf_records_in_order_a_batch_per_row_group(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.setattr(exports, "HF_CHUNK_ROWS", 4)
    written = exports.write_parquet(rows(10), tmp_path / "v.parquet")
    assert written == 10
    table = pq.ParquetFile(tmp_path / "v.parquet")
    assert table.metadata.num_row_groups == 3  # 4 + 4 + 2: one batch in memory at a time
    assert table.schema_arrow.names == ["messages", "id", "source", "metadata", "gradwalk"]
    assert table.read().to_pylist() == [exports.hf_record(r) for r in rows(10)]


def test_a_link_verifies_only_as_signed_and_until_it_expires(tmp_path):
    settings = Settings(state_dir=tmp_path)
    me = auth.Principal("alice", "reader")

    class Store:  # the token lookup: alice is live, nobody else
        def read(self, query: str, params: dict) -> list[dict]:
            return [{"name": "alice", "role": "reader"}] if params["name"] == "alice" else []

    link = links.sign(settings, me, "ds", 3, expires_in_s=60)
    assert links.verify(Store(), settings, link.segment, "ds", 3) == me
    key_file = tmp_path / links.SECRET_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert links.secret(settings) == key_file.read_text().encode()  # made once, then kept

    payload, signature = link.segment.split(".")
    forged = f"{payload}.{signature[:-1]}{'1' if signature.endswith('0') else '0'}"
    refused = [(link.segment, "ds", 4), (link.segment, "dt", 3), (forged, "ds", 3),
               (f"{payload}x.{signature}", "ds", 3), ("nonsense", "ds", 3), ("a.b", "ds", 3), ("é.ü", "ds", 3),
               ("\udc80.x", "ds", 3), ("x" * 5000, "ds", 3),
               (links.sign(settings, auth.Principal("bob", "admin"), "ds", 3).segment, "ds", 3)]  # bob: revoked
    for segment, dataset, version in refused:
        with pytest.raises(errors.NotAllowed):
            links.verify(Store(), settings, segment, dataset, version)
    old = links.sign(settings, me, "ds", 3, expires_in_s=60, now=time.time() - 120)
    with pytest.raises(errors.NotAllowed, match="expired"):
        links.verify(Store(), settings, old.segment, "ds", 3)
    other_key = secrets.token_urlsafe(24)  # another deployment's key, made here: no key is written in the repository
    with pytest.raises(errors.NotAllowed):
        links.verify(Store(), Settings(state_dir=tmp_path, link_secret=other_key), link.segment, "ds", 3)
    for life in (0, settings.link_max_age_s + 1, True):
        with pytest.raises(errors.InvalidInput, match="expires_in_s"):
            links.sign(settings, me, "ds", 3, expires_in_s=life)
    assert other_key not in repr(Settings(link_secret=other_key))


def test_the_client_loads_neither_datasets_nor_pyarrow_and_says_what_to_install(monkeypatch):
    code = ("import sys, gradwalk.platform.interfaces.client; "
            "print(sorted(m for m in ('datasets', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert (out.returncode, out.stdout.strip()) == (0, "[]"), out.stderr[-2000:]
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if it were not installed
    with pytest.raises(errors.GradwalkError, match="pip install datasets"):
        exports.write_hf(rows(2))


# --- against the session's API ------------------------------------------------------------------

@pytest.fixture
def version(store, collections, new_job, prefix):
    """A published version of three rows (two with an id, source and metadata of their own); its
    name and the rows as the parquet file must hold them."""
    from gradwalk.platform.intake.ingest import read_records
    from gradwalk.platform.intake.pools import import_pool
    from gradwalk.platform.versions import datasets

    tagged = [{**r, "messages": [{**m, "content": f"{prefix}{m['content']}"} for m in r["messages"]]}
              for r in RECORDS]
    import_pool(store, f"{prefix}fields", tagged)
    own = [r.id for r in read_records(tagged).records]
    name = f"{prefix}url"
    chosen = [own[1], collections.ids[0], own[0]]
    datasets.publish(store, name, [{"instruction_id": i, "rank": r, "component": r % 2, "step": r, "score": None}
                                   for r, i in enumerate(chosen)], job_id=new_job(name), lineage={})
    return name, [exports.hf_record(r) for r in datasets.iter_rows(store, name, 1)]


@pytest.fixture
def reader(store, prefix) -> str:
    return auth.create(store, f"{prefix}reader", "reader")


def test_load_dataset_reads_a_version_by_url_with_a_header_or_a_signed_link(
        api_url, version, reader, tmp_path, monkeypatch):
    import datasets as hf

    from gradwalk import Client

    monkeypatch.setattr(hf.config, "HF_HUB_OFFLINE", False)  # the tests' offline mode: this URL is local
    name, expected = version
    assert expected[2]["id"] == "17" and expected[2]["source"] == "hub/alpha"
    assert expected[2]["metadata"] == '{"level": 2, "topic": "maths"}'
    with Client(api_url, reader) as client:
        v1 = client.dataset(name).version(1)
        by_header = hf.load_dataset("parquet", data_files=v1.parquet_url, split="train",
                                    cache_dir=str(tmp_path / "hf-header"),
                                    storage_options={"headers": {"Authorization": f"Bearer {reader}"}})
        link = v1.signed_url(120)
        by_link = hf.load_dataset("parquet", data_files=link, split="train", cache_dir=str(tmp_path / "hf-link"))
        in_memory = v1.to_hf()
    assert "?" not in link and link.startswith(f"{api_url}/datasets/{name}/versions/1/data/signed/")
    for loaded in (by_header, by_link, in_memory):
        assert isinstance(loaded, hf.Dataset)
        assert loaded.column_names[:4] == ["messages", "id", "source", "metadata"]
        assert loaded.to_list() == expected


def test_the_file_is_built_once_and_answered_by_its_etag(api_url, settings, version, reader):
    import pyarrow.parquet as pq

    name, expected = version
    path = f"/datasets/{name}/versions/1/data/train.parquet"
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {reader}"}, timeout=60) as web:
        first = web.get(path)
        assert first.status_code == 200, first.text
        tag = first.headers["etag"]
        assert tag.startswith('"') and not tag.startswith("W/")
        assert first.headers["cache-control"].startswith("private, max-age=")
        assert first.headers["content-type"] == "application/vnd.apache.parquet"
        assert pq.read_table(io.BytesIO(first.content)).to_pylist() == expected
        cached = settings.state_dir / version_files.FOLDER / f"{tag.strip(chr(34))}.parquet"
        built = cached.stat().st_ino

        second = web.get(path)
        assert (second.status_code, second.headers["etag"], second.content) == (200, tag, first.content)
        assert cached.stat().st_ino == built  # the same file, not built again
        for header in (tag, f"W/{tag}", f'"other", {tag}', "*"):
            unchanged = web.get(path, headers={"If-None-Match": header})
            assert (unchanged.status_code, unchanged.content, unchanged.headers["etag"]) == (304, b"", tag)
        assert web.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
        head = web.head(path)
        assert (head.status_code, int(head.headers["content-length"])) == (200, len(first.content))
        footer = web.get(path, headers={"Range": "bytes=-4"})
        assert (footer.status_code, footer.content) == (206, b"PAR1")


def test_readers_may_fetch_and_nothing_asked_wrongly_is_a_500(api_url, settings, store, version, reader, prefix):
    name, _ = version
    base = f"/datasets/{name}/versions/1/data"
    with httpx.Client(base_url=api_url, timeout=60) as anonymous, \
            httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {reader}"}, timeout=60) as web:
        assert anonymous.get(f"{base}/train.parquet").status_code == 401
        assert anonymous.post(f"{base}/link").status_code == 401
        missing = web.get(f"/datasets/{prefix}nothing/versions/1/data/train.parquet")
        assert missing.status_code == 404 and f"{prefix}nothing" in missing.json()["error"]["message"]
        no_version = web.get(f"/datasets/{name}/versions/9/data/train.parquet")
        assert no_version.status_code == 404 and name in no_version.json()["error"]["message"]
        assert web.post(f"/datasets/{name}/versions/9/data/link").status_code == 404
        for bad_name, bad_version in (("bad%20name!", "1"), (name, "0"), (name, "x"), (name, "99999999999")):
            bad = f"/datasets/{bad_name}/versions/{bad_version}/data/train.parquet"
            assert web.get(bad).status_code == 422, bad
        assert web.post(f"{base}/link", json={"expires_in_s": settings.link_max_age_s + 1}).status_code == 422
        assert web.post(f"{base}/link", json={"expires_in_s": "soon"}).status_code == 422

        link = web.post(f"{base}/link", json={"expires_in_s": 60}).json()
        assert link["expires_in_s"] == 60 and link["url"].endswith(link["path"])
        assert anonymous.get(link["path"]).status_code == 200
        assert anonymous.head(link["path"]).status_code == 200
        segment = link["path"].split("/signed/")[1].split("/")[0]
        other = f"/datasets/{name}/versions/2/data/signed/{segment}/train.parquet"
        forged = link["path"].replace(segment, segment[:-1] + ("0" if segment[-1] != "0" else "1"))
        expired = links.sign(settings, auth.Principal(f"{prefix}reader", "reader"), name, 1, expires_in_s=60,
                             now=time.time() - 3600).segment
        for path in (forged, other, f"{base}/signed/{expired}/train.parquet", f"{base}/signed/x/train.parquet",
                     f"{base}/signed/%00.%ff/train.parquet", f"{base}/signed/%F0%9F%98%80.x/train.parquet"):
            refused = anonymous.get(path)
            assert refused.status_code == 403, (path, refused.text)
        assert anonymous.get(f"{base}/signed/{'x' * 2000}/train.parquet").status_code == 422

        printed = CliRunner().invoke(cli_app, ["dataset", "link", name, "1", "--expires", "30"],
                                     env={"GRADWALK_API_URL": api_url, "GRADWALK_API_TOKEN": reader})
        assert printed.exit_code == 0, printed.output
        assert anonymous.get(printed.output.strip()).status_code == 200

        auth.revoke(store, f"{prefix}reader")  # revoking the token ends its links at once
        assert anonymous.get(link["path"]).status_code == 403
    key = links.secret(settings).decode()
    log = settings.state_dir / "logs" / "api.log"
    assert not log.exists() or key not in log.read_text(errors="replace")
