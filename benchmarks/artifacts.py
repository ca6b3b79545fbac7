"""What a feature shard costs to write and read through the artifact store: a local folder against
an S3 bucket on a private s3proxy (loopback), and, for the S3 client, s3fs (which the store uses)
against obstore on the same objects when obstore is installed.

Prints one JSON line: seconds per shard for each backend and the ratios. A shard is
``--rows`` × ``--dim`` float32 (the default, 256 × 8,192, is 8 MiB: a full shard at the paper's
width). Reads go through ``FeatureStore.matrix`` one shard at a time (S3: first read downloads into
the host's cache; the ``warm`` figure is a second read from it).

    python -m benchmarks.artifacts               # 16 shards of 256 × 8192
    python -m benchmarks.artifacts --shards 4 --dim 1024
"""

from __future__ import annotations

import argparse
import io
import json
import secrets
import tempfile
import time
from pathlib import Path

import numpy as np
from pydantic import SecretStr

from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.local.stack import S3ProxyService
from gradwalk.ports import free_port
from gradwalk.settings import get_settings


def _time_store(store: FeatureStore, shards: list[np.ndarray]) -> dict[str, float]:
    ids = [[f"r{i}-{j}" for j in range(len(x))] for i, x in enumerate(shards)]
    start = time.perf_counter()
    for i, x in enumerate(shards):
        store.write_shard("bench", "train", i, ids[i], x)
    write = (time.perf_counter() - start) / len(shards)
    reads = []
    for _ in range(2):
        start = time.perf_counter()
        total = sum(float(block[0, 0]) for _, block in store.matrix("bench", "train").blocks())
        reads.append((time.perf_counter() - start) / len(shards))
    assert np.isclose(total, sum(float(x[0, 0]) for x in shards))
    return {"write_s": round(write, 4), "read_cold_s": round(reads[0], 4), "read_warm_s": round(reads[1], 4)}


def _time_clients(settings, data: bytes, n: int) -> dict[str, float]:
    """One shard's PUT and GET by s3fs and by obstore (when installed), same server, same bytes."""
    store = FeatureStore.from_settings(settings)
    fs, base = store.files.fs, store.files.base
    out = {}
    start = time.perf_counter()
    for i in range(n):
        fs.pipe_file(f"{base}/raw/s3fs-{i}", data)
    out["s3fs_put_s"] = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for i in range(n):
        fs.cat_file(f"{base}/raw/s3fs-{i}")
    out["s3fs_get_s"] = (time.perf_counter() - start) / n
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError:
        return {k: round(v, 4) for k, v in out.items()}
    bucket, _, prefix = base.partition("/")
    ob = S3Store(bucket, endpoint=settings.s3_endpoint_url, access_key_id=settings.s3_access_key_id,
                 secret_access_key=settings.s3_secret_access_key.get_secret_value(), region=settings.s3_region,
                 client_options={"allow_http": True}, virtual_hosted_style_request=False)
    start = time.perf_counter()
    for i in range(n):
        obstore.put(ob, f"{prefix}/raw/ob-{i}", data)
    out["obstore_put_s"] = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for i in range(n):
        bytes(obstore.get(ob, f"{prefix}/raw/ob-{i}").bytes())
    out["obstore_get_s"] = (time.perf_counter() - start) / n
    return {k: round(v, 4) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--dim", type=int, default=8192)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    shards = [rng.normal(size=(args.rows, args.dim)).astype(np.float32) for _ in range(args.shards)]
    with tempfile.TemporaryDirectory() as tmp:
        base = get_settings().model_copy(update={
            "state_dir": Path(tmp) / "state", "artifact_url": f"s3://bench-{secrets.token_hex(4)}/artifacts",
            "s3_endpoint_url": f"http://127.0.0.1:{free_port()}", "s3_access_key_id": "bench",
            "s3_secret_access_key": SecretStr(secrets.token_urlsafe(12))})
        server = S3ProxyService(base)
        server.spawn()
        try:
            server.wait_ready()
            local = _time_store(FeatureStore.from_settings(base.model_copy(update={"artifact_url": None})), shards)
            s3 = _time_store(FeatureStore.from_settings(base), shards)
            buffer = io.BytesIO()
            np.save(buffer, shards[0])
            clients = _time_clients(base, buffer.getvalue(), args.shards)
        finally:
            server.stop()
    print(json.dumps({
        "shard": [args.rows, args.dim], "shards": args.shards, "local": local, "s3": s3, "clients": clients,
        "s3_over_local_write": round(s3["write_s"] / local["write_s"], 2),
        "s3_over_local_read_cold": round(s3["read_cold_s"] / local["read_cold_s"], 2),
        **({"obstore_over_s3fs_get": round(clients["obstore_get_s"] / clients["s3fs_get_s"], 2),
            "obstore_over_s3fs_put": round(clients["obstore_put_s"] / clients["s3fs_put_s"], 2)}
           if "obstore_get_s" in clients else {}),
    }))


if __name__ == "__main__":
    main()
