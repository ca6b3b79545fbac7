"""The Python client of the gradwalk REST API: ``from gradwalk import Client``.

httpx and pydantic only (no torch, celery, neo4j or numpy), so it installs light on a laptop.
Errors come back as gradwalk's error families carrying the server's message; a job that fails
raises :class:`JobFailed` with the worker's error.

    client = Client()                       # GRADWALK_API_URL / GRADWALK_API_TOKEN
    job = client.select(pool="alpaca", target="gsm8k", method="g2is", ratio=0.05, dataset="gsm8k-5pct")
    job.wait(progress=True)
    v2 = client.dataset("gsm8k-5pct").version(2)
    v2.to_jsonl("train.jsonl"); v2.diff(1).added
    load_dataset("parquet", data_files=v2.signed_url(), split="train")   # no header needed
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx

from gradwalk import errors
from gradwalk.atomic import atomic_writer
from gradwalk.platform.interfaces.client_records import Collection, Evaluation, FeatureRun, Graph
from gradwalk.platform.shared.schemas import (
    CollectionPublic,
    DatasetPublic,
    DiffPublic,
    EvaluationPublic,
    FeatureRunExtension,
    FeatureRunPublic,
    GraphExtension,
    GraphPublic,
    ImportReportPublic,
    JobPublic,
    LinkPublic,
    RowPublic,
    TokenCreated,
    TokenPublic,
    VersionPublic,
)
from gradwalk.platform.shared.waiting import progress_bar
from gradwalk.platform.versions import exports
from gradwalk.statuses import JOB_FINISHED, JobStatus

DEFAULT_PORT = 8790

_FAMILIES: dict[int, type[errors.GradwalkError]] = {
    400: errors.InvalidInput,
    401: errors.Unauthenticated,
    403: errors.NotAllowed,
    404: errors.NotFound,
    408: errors.TimeLimitExceeded,
    409: errors.Conflict,
    413: errors.LimitExceeded,
    422: errors.InvalidInput,
    503: errors.ServiceUnavailable,
}


class JobFailed(errors.WorkFailed):
    """A selection job ended failed or cancelled; the message is the server's. (A feature run's,
    a graph's or an evaluation's ``wait()`` raises :class:`errors.WorkFailed`, its base.)"""


class JobTimeout(errors.WaitTimedOut):
    """:meth:`Job.wait` gave up waiting; the job itself goes on."""


def _default_url() -> str:
    url = os.environ.get("GRADWALK_API_URL")
    if url:
        return url
    from gradwalk.settings import get_settings

    return get_settings().local_api_url


def _local_token(url: str) -> str | None:
    """The local admin token that ``gradwalk services up`` keeps in its state folder, offered only
    to this machine's own API, never to another server; None when there is none."""
    from gradwalk.settings import get_settings

    settings = get_settings()
    if url != settings.local_api_url:
        return None
    try:
        return settings.local_token_file.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


class Client:
    """A session with one gradwalk API server."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout_s: float = 60.0) -> None:
        self.url = (url or _default_url()).rstrip("/")
        token = token or os.environ.get("GRADWALK_API_TOKEN") or _local_token(self.url)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # -- transport ------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise errors.ServiceUnavailable(
                f"cannot reach the gradwalk API at {self.url} ({e}): start it with `gradwalk api serve` "
                "or point GRADWALK_API_URL at it") from e
        _raise_for_error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    @contextlib.contextmanager
    def _stream(self, path: str, params: dict[str, Any] | None = None) -> Iterator[httpx.Response]:
        """A streamed GET: its errors come back as gradwalk's, a broken connection included."""
        try:
            with self._http.stream("GET", path, params=params) as response:
                if response.is_error:
                    response.read()
                    _raise_for_error(response)
                yield response
        except httpx.TransportError as e:
            raise errors.ServiceUnavailable(f"the connection to {self.url} broke during the download: {e}") from e

    def _lines(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        with self._stream(path, params) as response:
            for line in response.iter_lines():
                if line:
                    yield json.loads(line)

    def _download(self, path: str, dest: str | os.PathLike[str]) -> Path:
        """The body of GET ``path`` written to ``dest`` as it arrives (whole or not at all)."""
        with self._stream(path) as response, atomic_writer(dest, binary=True) as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
        return Path(dest)

    # -- service --------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    def cypher(self, query: str, params: dict[str, Any] | None = None, *, limit: int | None = None,
               timeout_s: float | None = None) -> CypherResult:
        """Rows of a read-only query; writes and administration are refused (NotAllowed)."""
        body: dict[str, Any] = {"query": query, "params": params or {}}
        if limit is not None:
            body["limit"] = limit
        if timeout_s is not None:
            body["timeout_s"] = timeout_s
        data = self._json("POST", "/cypher", json=body)
        return CypherResult(data["rows"], data["truncated"], data["limit"])

    # -- pools, targets, runs, graphs -------------------------------------------------------------
    def _import(self, kind: str, name: str, source: str | os.PathLike[str], *, fmt: str, on_server: bool,
                skip_invalid: bool, split: str | None, source_label: str | None,
                **extra: Any) -> ImportReportPublic:
        extra = {k: v for k, v in extra.items() if v is not None}
        if on_server:
            data = self._json("POST", f"/{kind}s/{name}/import", json={
                "path": str(source), "format": fmt, "split": split, "skip_invalid": skip_invalid,
                "source_label": source_label, **extra})
        else:
            path = Path(source)
            if not path.is_file():
                raise errors.InvalidInput(f"{path}: no such file (a folder is imported with on_server=True "
                                          "from the server's import folder)")
            form = {"format": fmt, "skip_invalid": str(skip_invalid).lower(), **{k: str(v) for k, v in extra.items()}}
            if source_label is not None:
                form["source_label"] = source_label
            with path.open("rb") as fh:  # streamed from the file, never read whole
                data = self._json("POST", f"/{kind}s/{name}/upload", files={"file": (path.name, fh)}, data=form)
        return ImportReportPublic.model_validate(data)

    def import_pool(self, name: str, source: str | os.PathLike[str], *, fmt: str = "auto",
                    on_server: bool = False, skip_invalid: bool = False, split: str | None = None,
                    source_label: str | None = None) -> ImportReportPublic:
        """Upload a local .jsonl/.json(.gz) or .parquet file into pool ``name``, or with ``on_server``
        import a file, a folder of .parquet files or a datasets folder of the API server's import
        folder (``GRADWALK_IMPORT_DIR`` there; ``source`` relative to it). A bad record is refused
        by file, line (or row) and field (InvalidInput) unless ``skip_invalid``; ``source_label``
        is the source of records that name none."""
        return self._import("pool", name, source, fmt=fmt, on_server=on_server, skip_invalid=skip_invalid,
                            split=split, source_label=source_label)

    def import_target(self, name: str, source: str | os.PathLike[str], *, fmt: str = "auto",
                      on_server: bool = False, skip_invalid: bool = False, split: str | None = None,
                      source_label: str | None = None, test: str | os.PathLike[str] | None = None,
                      test_fraction: float | None = None, seed: int | None = None) -> ImportReportPublic:
        """As :meth:`import_pool`, into target ``name``'s validation part. Its held-out test part
        (what :meth:`Version.evaluate` scores on) comes from the file ``test`` (imported after the
        validation part, from the same place and in the same format), or from a ``test_fraction``
        of ``source``'s examples drawn by ``seed``. A test example whose messages equal a
        validation example's is refused by its file and line (InvalidInput); the report's ``test``
        is the test part's."""
        if test is not None and test_fraction is not None:
            raise errors.InvalidInput("give a test file or a test fraction, not both")
        def send(file: str | os.PathLike[str], **extra: Any) -> ImportReportPublic:
            return self._import("target", name, file, fmt=fmt, on_server=on_server, skip_invalid=skip_invalid,
                                split=split, source_label=source_label, **extra)

        report = send(source, test_fraction=test_fraction, seed=seed)
        return report if test is None else report.model_copy(update={"test": send(test, part="test")})

    def pools(self) -> list[CollectionPublic]:
        return [CollectionPublic.model_validate(p) for p in self._json("GET", "/pools")]

    def pool(self, name: str) -> Collection:
        """Pool ``name``: ``.show()``, ``.rows()``, ``.iter_rows()``, ``.delete()``."""
        return Collection(self, "pool", name)

    def targets(self) -> list[CollectionPublic]:
        return [CollectionPublic.model_validate(t) for t in self._json("GET", "/targets")]

    def target(self, name: str) -> Collection:
        """Target ``name``: ``.show()``, ``.rows()``, ``.iter_rows()``, ``.delete()``."""
        return Collection(self, "target", name)

    def feature_run(self, run_id: str) -> FeatureRun:
        """Feature run ``run_id``: ``.show()``, ``.wait()``, ``.cancel()``, ``.extend()``, ``.delete()``."""
        return FeatureRun(self, run_id)

    def graph(self, graph_id: str) -> Graph:
        """Instruction graph ``graph_id``: ``.show()``, ``.wait()``, ``.cancel()`` (its build), ``.extend()``,
        ``.delete()``."""
        return Graph(self, graph_id)

    def feature_runs(self, *, pool: str | None = None, kind: str | None = None) -> list[FeatureRunPublic]:
        """Feature runs (of ``pool``, of ``kind``: ``gradient`` or ``embedding``), newest first."""
        params = {k: v for k, v in {"pool": pool, "kind": kind}.items() if v}
        return [FeatureRunPublic.model_validate(r) for r in self._json("GET", "/feature-runs", params=params)]

    def extend_feature_run(self, run_id: str) -> FeatureRunExtension:
        """As :meth:`FeatureRun.extend`: featurise the pool rows run ``run_id`` lacks."""
        return self.feature_run(run_id).extend()

    def graphs(self, *, feature_run: str | None = None) -> list[GraphPublic]:
        params = {"feature_run": feature_run} if feature_run else {}
        return [GraphPublic.model_validate(g) for g in self._json("GET", "/graphs", params=params)]

    def start_feature_run(self, pool: str, targets: list[str], *, kind: str = "gradient",
                          engine: dict[str, Any] | None = None, warmup: dict[str, Any] | None = None) -> FeatureRun:
        """Queue a feature run of ``pool`` and ``targets`` on the gpu workers: ``kind`` gradient (LoRA
        gradient features after a warm-up; ``engine`` and ``warmup`` override the defaults) or
        embedding. Follow it with ``.wait(progress=True)``."""
        body = {"pool": pool, "targets": list(targets), "kind": kind, "engine": engine or {}, "warmup": warmup or {}}
        return self.feature_run(FeatureRunPublic.model_validate(self._json("POST", "/feature-runs", json=body)).id)

    def build_graph(self, feature_run: str, *, k: int = 64, tau: float = 0.0, block_rows: int | None = None,
                    rebuild: bool = False) -> Graph:
        """Queue the build of ``feature_run``'s instruction graph (each row's ``k`` most similar rows
        with cosine ≥ ``tau``) on the gpu workers; a ready one is kept unless ``rebuild``. Follow it
        with ``.wait(progress=True)``."""
        body = {"feature_run": feature_run, "k": k, "tau": tau, "block_rows": block_rows, "rebuild": rebuild}
        return self.graph(GraphPublic.model_validate(self._json("POST", "/graphs", json=body)).id)

    def extend_graph(self, graph_id: str) -> GraphExtension:
        """As :meth:`Graph.extend`: add the rows the graph's feature run gained."""
        return self.graph(graph_id).extend()

    # -- tokens (admins) ----------------------------------------------------------------------------
    def create_token(self, name: str, role: str = "curator") -> TokenCreated:
        """Create API token ``name`` with ``role``; the answer holds its secret, shown this once."""
        return TokenCreated.model_validate(self._json("POST", "/tokens", json={"name": name, "role": role}))

    def revoke_token(self, name: str) -> TokenPublic:
        return TokenPublic.model_validate(self._json("POST", f"/tokens/{name}/revoke"))

    def tokens(self) -> list[TokenPublic]:
        return [TokenPublic.model_validate(t) for t in self._json("GET", "/tokens")]

    # -- jobs -----------------------------------------------------------------------------------
    def select(self, *, pool: str, target: str | list[str], dataset: str, method: str = "g2is",
               ratio: float | None = None, feature_run: str | None = None, graph: str | None = None,
               sources: list[str] | None = None, **params: Any) -> Job:
        """Submit a selection job; ``ratio`` and ``params`` are the method's parameters. Several
        targets pool their validation features (multi-target selection); ``sources`` selects only
        from the pool's rows of those record sources.

        Methods, with their parameters beside ``ratio`` (docs/quality.md says which to use for what):

        - ``g2is`` (delta=0.8, variance=0.5, anchor_pool=1000, fallback='strict'): the paper's G2IS, a
          walk on the gradient graph from the anchors of the validation gradients' principal components.
        - ``g2is-target`` (delta=0.8, variance=0.5, anchor_pool=1000, fallback='strict', centre=False,
          step='relevance'): G2IS steered by the target: components of what the validation gradients
          share, each step to the qualifying neighbour most relevant to the target.
        - ``g2is-no-graph`` (variance=0.5): ablation, G2IS's components and budgets without the walk.
        - ``g2is-no-gradient`` (delta=0.8, variance=0.5, anchor_pool=1000, fallback='strict'): ablation,
          the G2IS walk on sentence embeddings.
        - ``less`` (): the rows whose Adam-aware gradients are closest to the target's mean validation gradient.
        - ``embedding`` (reduce='max'): the rows whose sentence embeddings are closest to the target's.
        - ``random`` (seed=0): a seeded uniform sample, the baseline.
        """
        if ratio is not None:
            params["ratio"] = ratio
        body = {"pool": pool, "targets": [target] if isinstance(target, str) else list(target),
                "method": method, "dataset": dataset, "params": params,
                "feature_run": feature_run, "graph": graph,
                "sources": list(sources) if sources is not None else None}
        return Job(self, JobPublic.model_validate(self._json("POST", "/jobs", json=body)))

    def select_like(self, dataset: str) -> Job:
        """Run ``dataset``'s last job again, as it was, on the grown pool: its next version
        (refused, with what to run, while the feature run or graph lacks rows of the pool)."""
        return Job(self, JobPublic.model_validate(self._json("POST", f"/jobs/like/{dataset}")))

    def job(self, job_id: str) -> Job:
        return Job(self, self._job_info(job_id))

    def _job_info(self, job_id: str) -> JobPublic:
        return JobPublic.model_validate(self._json("GET", f"/jobs/{job_id}"))

    def jobs(self, *, status: str | None = None, limit: int = 100) -> list[Job]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return [Job(self, JobPublic.model_validate(j)) for j in self._json("GET", "/jobs", params=params)]

    # -- datasets -------------------------------------------------------------------------------
    def datasets(self) -> list[DatasetPublic]:
        return [DatasetPublic.model_validate(d) for d in self._json("GET", "/datasets")]

    def dataset(self, name: str) -> Dataset:
        return Dataset(self, name)

    def evaluation(self, evaluation_id: str) -> Evaluation:
        return Evaluation(self, evaluation_id)


def _raise_for_error(response: httpx.Response) -> None:
    if not response.is_error:
        return
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = f"{response.status_code} {response.reason_phrase}: {response.text[:500]}"
    raise _FAMILIES.get(response.status_code, errors.GradwalkError)(message)


@dataclass(frozen=True)
class CypherResult:
    """Rows of a read-only query; ``truncated`` when the row limit cut it short."""

    rows: list[dict[str, Any]]
    truncated: bool
    limit: int

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


class Job:
    """A selection job. ``status`` and ``progress`` re-read it from the server until it finishes."""

    def __init__(self, client: Client, info: JobPublic) -> None:
        self._client = client
        self.info = info

    def __repr__(self) -> str:
        return f"Job({self.id!r}, status={self.info.status!r}, progress={self.info.progress:.2f})"

    @property
    def id(self) -> str:
        return self.info.id

    def refresh(self) -> Job:
        self.info = self._client._job_info(self.id)
        return self

    @property
    def status(self) -> str:
        if self.info.status not in JOB_FINISHED:
            self.refresh()
        return self.info.status

    @property
    def progress(self) -> float:
        if self.info.status not in JOB_FINISHED:
            self.refresh()
        return self.info.progress

    def cancel(self) -> Job:
        self.info = JobPublic.model_validate(self._client._json("POST", f"/jobs/{self.id}/cancel"))
        return self

    def wait(self, *, progress: bool = False, timeout: float | None = None, poll_s: float = 1.0) -> Job:
        """Block until the job finishes; return it when it succeeded, raise :class:`JobFailed` with
        the server's error when it failed or was cancelled, :class:`JobTimeout` (a TimeoutError)
        after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with progress_bar(f"job {self.id}") if progress else contextlib.nullcontext() as update:
            while self.refresh().info.status not in JOB_FINISHED:
                if update is not None:
                    update(round(1000 * self.info.progress), 1000, self.info.stage or "")
                if deadline is not None and time.monotonic() >= deadline:
                    raise JobTimeout(f"job {self.id} is still {self.info.status} after {timeout}s; "
                                     "it goes on running")
                time.sleep(poll_s)
            if update is not None:
                update(round(1000 * self.info.progress), 1000, self.info.status)
        if self.info.status != JobStatus.SUCCEEDED:
            reason = self.info.error or self.info.stage or self.info.status
            raise JobFailed(f"job {self.id} {self.info.status}: {reason}")
        return self

    def dataset_version(self) -> Version:
        """The dataset version the succeeded job published."""
        if self.info.version is None or self.info.dataset is None:
            raise errors.Conflict(f"job {self.id} is {self.info.status} and has published no version yet")
        return self._client.dataset(self.info.dataset).version(self.info.version)


class Dataset:
    """A named dataset on the server (nothing is fetched until asked)."""

    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self.name = name

    def __repr__(self) -> str:
        return f"Dataset({self.name!r})"

    def show(self) -> DatasetPublic:
        """How many versions it has, and its latest."""
        return DatasetPublic.model_validate(self._client._json("GET", f"/datasets/{self.name}"))

    def versions(self) -> list[Version]:
        found = self._client._json("GET", f"/datasets/{self.name}/versions")
        return [Version(self._client, VersionPublic.model_validate(v)) for v in found]

    def version(self, number: int) -> Version:
        data = self._client._json("GET", f"/datasets/{self.name}/versions/{number}")
        return Version(self._client, VersionPublic.model_validate(data))

    def latest(self) -> Version:
        found = self.versions()
        if not found:
            raise errors.NotFound(f"dataset {self.name!r} has no versions")
        return found[-1]


class Version:
    """One published, immutable version of a dataset."""

    def __init__(self, client: Client, info: VersionPublic) -> None:
        self._client = client
        self.info = info

    def __repr__(self) -> str:
        return f"Version({self.dataset!r}, {self.number}, size={self.info.size}, status={self.info.status!r})"

    @property
    def dataset(self) -> str:
        return self.info.dataset

    @property
    def number(self) -> int:
        return self.info.version

    @property
    def _path(self) -> str:
        return f"/datasets/{self.dataset}/versions/{self.number}"

    def rows(self, offset: int = 0, limit: int = 100) -> list[RowPublic]:
        """A page of rows in rank order."""
        data = self._client._json("GET", f"{self._path}/rows", params={"offset": offset, "limit": limit})
        return [RowPublic.model_validate(r) for r in data["rows"]]

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        """Every row in rank order (streamed), as plain dicts."""
        return self._client._lines(f"{self._path}/export", {"format": "rows"})

    def to_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """A ``{"messages", "id", "source", "metadata", "gradwalk"}`` line per row, in rank order."""
        exports.write_jsonl(self.iter_rows(), path)
        return Path(path)

    def to_hf(self, path: str | os.PathLike[str] | None = None) -> Any:
        """The rows as a ``datasets.Dataset`` (saved with ``save_to_disk`` when ``path`` is given).
        Needs the ``datasets`` package, imported only here."""
        return exports.write_hf(self.iter_rows(), path)

    @property
    def parquet_url(self) -> str:
        """The version's parquet file (needs the token in a header): ``load_dataset("parquet",
        data_files=v.parquet_url, storage_options={"headers": {"Authorization": "Bearer ..."}})``."""
        return f"{self._client.url}{self._path}/data/train.parquet"

    def signed_url(self, expires_in_s: int | None = None) -> str:
        """A link to the version's parquet file that needs no header, valid ``expires_in_s``
        seconds (default and most: the server's GRADWALK_LINK_MAX_AGE_S) or until the token is
        revoked: ``load_dataset("parquet", data_files=v.signed_url())``."""
        body = {} if expires_in_s is None else {"expires_in_s": expires_in_s}
        link = LinkPublic.model_validate(self._client._json("POST", f"{self._path}/data/link", json=body))
        return f"{self._client.url}{link.path}"

    def to_llamafactory(self, folder: str | os.PathLike[str], name: str | None = None) -> Path:
        """``<folder>/<name>.json`` plus its entry in ``<folder>/dataset_info.json``
        (name: ``<dataset>-v<version>``)."""
        return exports.write_llamafactory(self.iter_rows(), folder, name or f"{self.dataset}-v{self.number}")

    def export(self, fmt: str, dest: str | os.PathLike[str]) -> Path:
        """Write this version as ``jsonl``, ``hf`` or ``llamafactory`` (see the ``to_*`` methods)."""
        return exports.write(fmt, self.iter_rows(), dest, f"{self.dataset}-v{self.number}")

    def diff(self, other: int | Version, *, limit: int | None = None) -> DiffPublic:
        """What changed from version ``other`` to this one (added here, removed since, kept)."""
        base = other.number if isinstance(other, Version) else other
        params: dict[str, Any] = {"a": base, "b": self.number}
        if limit is not None:
            params["limit"] = limit
        return DiffPublic.model_validate(self._client._json("GET", f"/datasets/{self.dataset}/diff", params=params))

    def evaluate(self, target: str, **settings: Any) -> Evaluation:
        """Queue an evaluation on ``target``'s test part (``settings``: epochs, random_seeds, seed,
        batch_size, lr, greedy, max_new_tokens, engine; the gpu worker's defaults otherwise);
        ``.wait()`` on the answer follows it to its figures."""
        info = EvaluationPublic.model_validate(self._client._json("POST", f"{self._path}/evaluations",
                                                                  json={"target": target, **settings}))
        return Evaluation(self._client, info.id)

    def evaluations(self) -> list[EvaluationPublic]:
        """This version's evaluations, oldest first, with their figures once they succeeded."""
        return [EvaluationPublic.model_validate(e) for e in self._client._json("GET", f"{self._path}/evaluations")]

    def retire(self, reason: str) -> Version:
        """Retire this version (recorded with ``reason``); its rows stay readable."""
        self.info = VersionPublic.model_validate(self._client._json("POST", f"{self._path}/retire",
                                                                     json={"reason": reason}))
        return self
