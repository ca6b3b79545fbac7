"""The one typed place for configuration.

Every port, password, path and URL comes from the environment (prefix ``GRADWALK_``) or a
``.env`` file, with safe local defaults: services bind to loopback and use ports of their own
(17687 for Bolt, 16379 for Redis) so they never collide with a system Neo4j or Redis.
Settings are built by :func:`get_settings`, never at import time.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_DEV_PASSWORD = "gradwalk-local-dev"


def _default_home() -> Path:
    return Path.home() / ".gradwalk"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRADWALK_", env_file=".env", extra="ignore")

    env: Literal["local", "production"] = "local"

    # Folders: state (service data, logs, pids, artifacts) and a build/model cache shared by runs.
    state_dir: Path = Field(default_factory=lambda: _default_home() / "state")
    cache_dir: Path = Field(default_factory=lambda: _default_home() / "cache")
    artifact_dir: Path | None = None
    # Where feature shards live when hosts share no disk: ``s3://bucket/prefix`` (any S3-compatible
    # server). Unset: the local folder above. Workers on every host point at the same URL.
    artifact_url: str | None = None
    s3_endpoint_url: str | None = None  # unset: AWS itself; a loopback URL: `services up` starts s3proxy there
    s3_access_key_id: str | None = None  # unset: the S3 client's own chain (AWS_* variables, instance role)
    s3_secret_access_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    # Each host's copies of the shards it read from S3 (under the state folder), least recently
    # used evicted past this size; 0 = no cap. Keep it above one run's features (N × D × 4 bytes):
    # a graph block reads them all.
    artifact_cache_gb: float = Field(default=100.0, ge=0)

    # Neo4j (Bolt). The local launcher binds to the host and port of this URI.
    neo4j_uri: str = "bolt://127.0.0.1:17687"
    neo4j_user: str = "neo4j"
    neo4j_password: SecretStr = SecretStr(LOCAL_DEV_PASSWORD)
    neo4j_database: str = "neo4j"
    neo4j_heap_mb: int = 1024
    neo4j_pagecache_mb: int = 512
    # Transaction logs kept after a checkpoint (Neo4j's retention policy syntax). Neo4j's own default
    # keeps two days of them: gigabytes after a few graph builds, which nothing here reads again.
    neo4j_tx_log_retention: str = "1G size"
    neo4j_max_retry_s: float = 30.0
    # Neo4j's own limit on every transaction (db.transaction.timeout; 0 = none): a backstop for
    # the workers' and the API's work, which carry shorter limits of their own.
    neo4j_tx_timeout_s: int = Field(default=600, ge=0)

    # Redis: Celery broker and result backend.
    redis_url: str = "redis://127.0.0.1:16379/0"

    # Celery.
    task_time_limit_s: int = 6 * 3600
    worker_concurrency: int = 1
    worker_max_tasks_per_child: int = 20
    # A worker killed whole (SIGKILL, out of memory, a lost host) cannot hand its task back; every
    # worker checks this often for unacknowledged tasks that no live worker holds and requeues
    # those older than the grace (workers/recovery.py). 0 turns the check off.
    orphan_check_s: float = Field(default=60.0, ge=0)
    orphan_grace_s: float = Field(default=60.0, ge=0)

    # REST API.
    api_host: str = "127.0.0.1"
    api_port: int = 8790
    # The only folder whose files the API imports by server path (POST /pools/NAME/import);
    # default <state_dir>/imports. Anything else is uploaded.
    import_dir: Path | None = None
    # What one API request may cost; each refusal is a 4xx that names its limit.
    api_request_timeout_s: float = Field(default=120.0, gt=0)  # wall time until the response starts
    api_query_timeout_s: float = Field(default=60.0, gt=0)  # each of the API's Neo4j transactions, server-side
    api_max_body_bytes: int = Field(default=512 << 20, gt=0)  # a request body (uploads)
    api_max_inflated_bytes: int = Field(default=2 << 30, gt=0)  # a gzip upload once decompressed
    api_max_inflate_ratio: float = Field(default=100.0, gt=1)  # decompressed / compressed size of an upload
    api_max_response_bytes: int = Field(default=32 << 20, gt=0)  # a Cypher result, as JSON
    ui_session_age_s: int = Field(default=12 * 3600, gt=0)  # a web sign-in lasts this long (platform/access/sessions.py)
    # Signed links to a version's parquet file (platform/access/links.py): the HMAC key (unset: a random
    # one kept in <state_dir>/link-secret; set it when several API hosts must accept each other's
    # links), and how long a link may live at most (the default when none is asked for).
    link_secret: SecretStr | None = None
    link_max_age_s: int = Field(default=3600, gt=0, le=7 * 24 * 3600)
    # This host's built parquet files of versions (platform/versions/version_files.py), least recently
    # used evicted past this size; 0 = no cap.
    version_file_cache_gb: float = Field(default=10.0, ge=0)
    # Deletes (platform/catalog/deletion.py) remove rows and edges this many per transaction, so a big pool
    # never sits in one transaction and a delete cut short is finished by the next.
    delete_batch_rows: int = Field(default=5_000, gt=0)

    # Compute.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    feature_shard_rows: int = 256  # rows per feature shard task (the unit of redelivery)
    # torch CPU threads per worker process; 0 = torch's default (one per core). Workers that share
    # few cores with other busy processes run faster on 1 (OpenMP threads that wait on each other).
    torch_threads: int = Field(default=0, ge=0)

    # Local service tools.
    java_bin: str = "java"
    maven_bin: str = "mvn"
    redis_server_bin: str = "redis-server"

    @field_validator("state_dir", "cache_dir", "artifact_dir", "import_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @field_validator("neo4j_password", mode="after")
    @classmethod
    def _strong_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 8:
            raise ValueError("GRADWALK_NEO4J_PASSWORD must have at least 8 characters (Neo4j's minimum)")
        return value

    def model_post_init(self, context: object, /) -> None:
        if self.env == "production" and self.neo4j_password.get_secret_value() == LOCAL_DEV_PASSWORD:
            raise ValueError("GRADWALK_NEO4J_PASSWORD must be set outside local development")

    @property
    def artifacts(self) -> str:
        """Where the artifact store lives (feature shards, manifests): an ``s3://`` URL or a folder."""
        return self.artifact_url or str(self.artifact_dir or self.state_dir / "artifacts")

    @property
    def version_file_cache_bytes(self) -> int | None:
        """The cap on this host's built version files in bytes; None when there is none."""
        return int(self.version_file_cache_gb * (1 << 30)) or None

    @property
    def artifact_cache_bytes(self) -> int | None:
        """The cap on this host's shard copies in bytes; None when there is none."""
        return int(self.artifact_cache_gb * (1 << 30)) or None

    @field_validator("artifact_url", mode="after")
    @classmethod
    def _s3_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"GRADWALK_ARTIFACT_URL must look like s3://bucket/prefix, not {value!r} "
                             "(a local folder goes in GRADWALK_ARTIFACT_DIR)")
        return value.rstrip("/")

    @property
    def local_api_url(self) -> str:
        """This machine's own API (GRADWALK_API_HOST and _PORT; loopback for a wildcard host)."""
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::") else self.api_host
        return f"http://{host}:{self.api_port}"

    @property
    def local_token_file(self) -> Path:
        """The local admin token's secret, written by ``gradwalk services up`` (mode 0600)."""
        return self.state_dir / "api-token"

    @property
    def import_root(self) -> Path:
        """The folder the API may import server-side files from (and nothing outside it)."""
        return self.import_dir or self.state_dir / "imports"

    @property
    def neo4j_address(self) -> tuple[str, int]:
        parts = urlsplit(self.neo4j_uri)
        return parts.hostname or "127.0.0.1", parts.port or 7687

    @property
    def redis_address(self) -> tuple[str, int]:
        parts = urlsplit(self.redis_url)
        return parts.hostname or "127.0.0.1", parts.port or 6379


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
