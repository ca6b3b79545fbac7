"""The REST API's request and response shapes, shared by the server and the Python client.

Pydantic only, so the client can import them without the server's dependencies; what client and
server must agree on (job statuses, record shapes, request limits) is defined here, once. Requests are
``...Create``/``...Request`` shapes that refuse unknown fields; responses are ``...Public`` shapes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gradwalk.statuses import EvaluationStatus, FeatureRunStatus, GraphStatus, JobStatus

# What one read-only Cypher request may ask for (the server also bounds the bytes of its answer).
DEFAULT_LIMIT = 1_000
MAX_LIMIT = 10_000
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 60.0
MAX_QUERY_CHARS = 100_000
MAX_K = 10_000  # out-edges per row an instruction graph may be asked for

Format = Literal["auto", "alpaca", "sharegpt", "messages", "prompt_completion"]  # ingest's record shapes


ExportFormat = Literal["jsonl", "rows"]
Name = Field(min_length=1, max_length=200)


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorPublic(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: str
    version: str


TargetPart = Literal["validation", "test"]
TEST_FRACTION = ("Hold out this share of the file's examples (seeded by `seed`) as the target's test part; "
                 "the rest is its validation part")


class ImportFromPath(Request):
    """Import a file or ``save_to_disk`` folder from the API server's import folder
    (``GRADWALK_IMPORT_DIR``, default ``<state>/imports``): ``path`` is relative to it, or an
    absolute path inside it; anything outside is refused (403)."""

    path: str = Field(min_length=1, max_length=4096, pattern=r"^[^\x00]+$")
    format: Format = "auto"
    split: str | None = Field(default=None, max_length=200)
    skip_invalid: bool = False
    source_label: str | None = Field(default=None, min_length=1, max_length=200,
                                     description="Source of the records that name none of their own")
    part: TargetPart = "validation"
    test_fraction: float | None = Field(default=None, gt=0, lt=1, description=TEST_FRACTION)
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="The seed of the test split")


class ReadReportPublic(BaseModel):
    source: str
    read: int
    imported: int
    duplicates: int
    skipped: int
    skip_reasons: list[str] = []
    shapes: dict[str, int] = {}


class ImportReportPublic(BaseModel):
    kind: str
    name: str
    import_id: str
    source: str
    records: ReadReportPublic
    added: int
    created: int
    size: int
    part: str | None = None  # a target's "validation" or "test" part
    test: ImportReportPublic | None = None  # the test part imported beside it (--test, a seeded split)

    def summary(self) -> str:
        r = self.records
        skipped = f", {r.skipped} skipped" if r.skipped else ""
        part = f" ({self.part} part)" if self.part else ""
        line = (f"{self.kind} {self.name!r}{part}: {r.read} records read, {r.imported} unique "
                f"({r.duplicates} duplicates{skipped}); {self.added} added, {self.created} new; "
                f"size {self.size}")
        return line if self.test is None else f"{line}\n{self.test.summary()}"


class CollectionPublic(BaseModel):
    """A pool or a target."""

    name: str
    status: str | None = None
    size: int | None = None
    test_size: int | None = None  # a target's held-out test part, when it has one
    last_import_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    created_by: str | None = None  # the name of the token whose import created it


class Message(BaseModel):
    role: str
    content: str


class VersionRef(BaseModel):
    """One published dataset version, by name and number."""

    dataset: str
    version: int


class DependantsPublic(BaseModel):
    """What depends on a pool, target, feature run or graph: deleting it without ``force`` is
    refused while any list here is not empty. ``active_jobs`` (queued or running) refuse it even
    with ``force``."""

    feature_runs: list[str] = []
    graphs: list[str] = []
    versions: list[VersionRef] = []
    jobs: list[str] = []
    evaluations: list[str] = []  # of versions, on a target's test part
    active_jobs: list[str] = []  # queued or running selection jobs and evaluations

    def names(self) -> list[str]:
        """Every dependant as a person reads it: ``feature run fr-1``, ``version ds v2``, ..."""
        return ([f"feature run {r}" for r in self.feature_runs] + [f"graph {g}" for g in self.graphs]
                + [f"version {v.dataset} v{v.version}" for v in self.versions]
                + [f"job {j}" for j in self.jobs] + [f"evaluation {e}" for e in self.evaluations])


class ImportPublic(BaseModel):
    """One finished import into a pool or target, with the lines it skipped."""

    import_id: str
    source: str
    at: str | None = None
    created_by: str | None = None
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    skipped: int = 0
    skip_reasons: list[str] = []
    added: int = 0
    created: int = 0
    size: int = 0
    part: str | None = None  # a target's "validation" or "test" part


class CollectionDetail(CollectionPublic):
    """A pool or target shown whole: its rows by source, its imports and what depends on it."""

    kind: str
    sources: dict[str, int] = {}
    imports: list[ImportPublic] = []
    dependants: DependantsPublic = DependantsPublic()


class MemberRow(BaseModel):
    """One row of a pool (an instruction) or a target (a validation example)."""

    id: str
    messages: list[Message]
    source: str | None = None


class MembersPage(BaseModel):
    kind: str
    name: str
    offset: int
    limit: int
    total: int
    rows: list[MemberRow]


class DeletePublic(BaseModel):
    """What a delete did. ``outcome`` is ``deleted`` (gone), ``tombstone`` (its record stays, marked
    deleted, because a job's lineage names it) or ``already deleted`` (a tombstone, nothing to do).
    ``removed`` counts what went (rows, edges, files, ...), ``kept`` what stayed for published versions."""

    kind: str
    name: str
    outcome: str
    removed: dict[str, int] = {}
    kept: dict[str, int] = {}
    cascaded: list[DeletePublic] = []


class GraphPublic(BaseModel):
    """An instruction graph: its feature run, k and τ, size, and how its build went."""

    id: str
    feature_run: str
    k: int
    tau: float
    status: GraphStatus
    nodes: int
    edges: int
    blocks: int
    blocks_done: int
    block_rows: int
    created_at: str | None = None
    started_at: str | None = None
    built_at: str | None = None
    build_s: float | None = None
    error: str | None = None
    created_by: str | None = None  # the token whose build made it
    deleted_at: str | None = None  # a tombstone's: when and by which token it was deleted
    deleted_by: str | None = None
    extension_refused: str | None = None  # why a worker refused the extension last asked for (graph unchanged)


class GraphDetail(GraphPublic):
    """A graph shown whole: with what depends on it."""

    dependants: DependantsPublic = DependantsPublic()


class Generation(BaseModel):
    """One generation of a feature run: the rows it held after it, how many it added, and when."""

    generation: int
    rows: int
    added: int
    at: str | None = None


class Checkpoint(BaseModel):
    """One warm-up checkpoint of a gradient run: its epoch and the learning rate it ended at."""

    epoch: int
    lr: float


class FeatureRunPublic(BaseModel):
    """A feature run: what it featurises, with which settings, and how far it got."""

    id: str
    status: FeatureRunStatus
    kind: str  # gradient or embedding
    pool: str
    targets: list[str] = []
    engine: dict[str, Any] = {}
    warmup: dict[str, Any] = {}
    rows_total: int = 0
    rows_done: int = 0
    rows_in_flight: int = 0  # rows that running shards have done but not yet counted
    shards_total: int | None = None
    warmup_steps_done: int | None = None
    warmup_steps_total: int | None = None
    dim: int | None = None
    checkpoints: list[Checkpoint] = []
    parts: list[str] = []
    rows: int | None = None  # pool rows with a feature, once complete
    skipped: dict[str, int] = {}  # per part, rows without a response token in max_length
    error: str | None = None
    created_at: str | None = None
    stage_at: str | None = None  # when the status last changed (the pages' ETA counts from it)
    finished_at: str | None = None
    created_by: str | None = None  # the token that queued it
    deleted_at: str | None = None  # a tombstone's: when and by which token it was deleted
    deleted_by: str | None = None
    generations: list[Generation] = []  # after each featurisation: the rows held (see docs/growing.md)
    extension: int | None = None  # the generation an extension in progress (or failed) is making


# What an extension keeps of its run: a run with other settings is a new run.
FIXED_SETTINGS = ("model", "LoRA shape", "projection (dims, kind, seed)", "max_length",
                  "warm-up checkpoints and their learning rates")


class FeatureRunExtension(FeatureRunPublic):
    """A feature run just asked to extend: ``adding`` rows queued (0: it already holds every pool row)."""

    adding: int


class FeatureRunDetail(FeatureRunPublic):
    """A feature run shown whole: with what depends on it."""

    dependants: DependantsPublic = DependantsPublic()


class JobCreate(Request):
    pool: str = Name
    targets: list[str] = Field(min_length=1, max_length=100)
    method: str = Field(min_length=1, max_length=100)
    dataset: str = Name
    params: dict[str, Any] = {}
    feature_run: str | None = Field(default=None, max_length=200)
    graph: str | None = Field(default=None, max_length=200)
    sources: list[Annotated[str, Field(min_length=1, max_length=1000)]] | None = Field(
        default=None, min_length=1, max_length=100,
        description="Select only from the pool's rows of these record sources")


class JobPublic(BaseModel):
    id: str
    status: JobStatus
    method: str | None = None
    params: dict[str, Any] = {}
    pool: str | None = None
    targets: list[str] = []
    dataset: str | None = None
    progress: float = 0.0
    stage: str | None = None
    error: str | None = None
    version: int | None = None
    summary: dict[str, Any] | None = None
    feature_run: str | None = None
    graph: str | None = None
    sources: list[str] | None = None  # the record sources the pool was narrowed to
    created_by: str | None = None  # the name of the token that submitted it
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class EvaluationEngine(Request):
    """The engine settings an evaluation may set, as a feature run takes them; the rest are the
    gpu worker's device defaults (workers/engine/config.py)."""

    model: str | None = Field(default=None, min_length=1, max_length=4096, description="A local HF model folder")
    lora_r: int | None = Field(default=None, ge=1, le=1024)
    lora_alpha: float | None = Field(default=None, gt=0, le=1e6)
    lora_targets: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=64)
    max_length: int | None = Field(default=None, ge=2, le=1 << 16)
    batch_size: int | None = Field(default=None, ge=1, le=1024)


class EvaluationRequest(Request):
    """Evaluate a version on a target's test part. Every setting left out takes the gpu worker's
    device default (workers/engine/evaluation.py), and the evaluation records what it used."""

    target: str = Field(min_length=1, max_length=200)
    epochs: int | None = Field(default=None, ge=1, le=100, description="Epochs over the rows of each fine-tune")
    random_seeds: int | None = Field(default=None, ge=1, le=20, description="Random subsets of the same size")
    batch_size: int | None = Field(default=None, ge=1, le=1024)
    lr: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, description="The version's fine-tune seed")
    greedy: bool | None = Field(default=None, description="Score exact match by greedy decoding (gold numbers)")
    max_new_tokens: int | None = Field(default=None, ge=1, le=4096)
    engine: EvaluationEngine = Field(default_factory=EvaluationEngine)

    def settings(self) -> dict[str, Any]:
        """The settings asked for (the engine's under ``engine``), without those left to the
        device's defaults."""
        asked = self.model_dump(exclude={"target"}, exclude_none=True)
        return {k: v for k, v in asked.items() if v != {}}


class EvaluationPublic(BaseModel):
    """One evaluation of a dataset version on a target's test part. ``summary`` (per figure: the
    base model's, the version's and the random subsets' means and the version's paired difference
    to random) and ``scores`` (the per-example scores' artifact key) exist once it succeeded."""

    id: str
    status: EvaluationStatus
    dataset: str
    version: int
    target: str
    settings: dict[str, Any] = {}
    progress: float = 0.0
    stage: str | None = None
    eta_s: float | None = None
    error: str | None = None
    summary: dict[str, Any] | None = None
    scores: str | None = None
    created_by: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class DatasetPublic(BaseModel):
    name: str
    created_at: str | None = None
    versions: int
    latest: int | None = None
    latest_complete: int | None = None


class SourceCount(BaseModel):
    source: str | None = None  # None: records that named no source
    rows: int


class VersionPublic(BaseModel):
    dataset: str
    version: int
    status: str
    size: int
    content_hash: str
    created_at: str | None = None
    created_by: str | None = None  # the name of the token whose job published it
    job_id: str | None = None
    method: str | None = None
    pool: str | None = None
    targets: list[str] = []
    feature_run: str | None = None
    graph: str | None = None
    params: dict[str, Any] = {}
    # as recorded at publish, and ``evaluations``: [{id, target, status}] of the version since, oldest first
    lineage: dict[str, Any] = {}
    source_mix: list[SourceCount] = []  # rows per record source, most first
    gradwalk_version: str | None = None
    retired_at: str | None = None
    retired_reason: str | None = None


class RowPublic(BaseModel):
    rank: int
    instruction_id: str
    messages: list[Message]
    component: int | None = None
    step: int | None = None
    score: float | None = None
    predecessor: str | None = None  # the walk came to this row from that instruction (None: an anchor)
    reached_by: str | None = None  # "anchor", "edge" or "fallback"
    original_id: str | int | None = None  # the record's own id, as imported
    source: str | None = None  # the record's own source, as imported
    metadata: dict[str, Any] = {}  # the record's other fields, as imported


class RowsPage(BaseModel):
    dataset: str
    version: int
    offset: int
    limit: int
    total: int
    rows: list[RowPublic]


class DiffPublic(BaseModel):
    dataset: str
    a: int
    b: int
    added: int
    removed: int
    kept: int
    added_ids: list[str]
    removed_ids: list[str]
    added_new: int | None = None  # of the added rows, those the pool gained after version a was selected
    added_new_ids: list[str] = []


class RetireRequest(Request):
    reason: str = Field(min_length=1, max_length=1000)


class LinkRequest(Request):
    """A signed link to a version's parquet file; the server caps the lifetime (GRADWALK_LINK_MAX_AGE_S)."""

    expires_in_s: int | None = Field(default=None, ge=1, le=2**31 - 1,
                                     description="Seconds the link holds (default: the server's maximum)")


class LinkPublic(BaseModel):
    """A link that needs no header: ``datasets.load_dataset("parquet", data_files=url)``."""

    url: str  # absolute, as this request reached the server
    path: str  # the same from the server's root, for a client that knows the server's address better
    expires_at: int  # unix seconds
    expires_in_s: int


class CypherRequest(Request):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    params: dict[str, Any] = {}
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=MAX_TIMEOUT_S)


class CypherResultPublic(BaseModel):
    rows: list[dict[str, Any]]
    truncated: bool
    limit: int


class FeatureRunCreate(Request):
    """A feature run to start: ``kind`` gradient (LoRA gradient features after a warm-up) or
    embedding; ``engine`` and ``warmup`` override the worker's defaults (docs/architecture.md §4.1)."""

    pool: str = Name
    targets: list[Annotated[str, Name]] = Field(default=[], max_length=100)
    kind: str = Field(default="gradient", max_length=50)
    engine: dict[str, Any] = {}
    warmup: dict[str, Any] = {}


class GraphCreate(Request):
    """An instruction graph to build from a complete feature run: each row's ``k`` most similar rows
    with cosine ≥ ``tau``; ``rebuild`` deletes a ready one first."""

    feature_run: str = Name
    k: int = Field(default=64, ge=1, le=MAX_K)
    tau: float = Field(default=0.0, ge=-1.0, le=1.0)
    block_rows: int | None = Field(default=None, ge=1, le=2**31 - 1)
    rebuild: bool = False


class GraphExtension(GraphPublic):
    """A graph just asked to extend: ``rows_after`` is its node count once the extension is done."""

    rows_after: int


class TokenCreate(Request):
    name: str = Name
    role: str = Field(default="curator", max_length=20, description="reader, curator or admin")


class TokenPublic(BaseModel):
    """An API token's record (never its secret): name, role, when it was made and revoked."""

    name: str
    role: str | None = None
    created_at: str | None = None
    revoked_at: str | None = None


class TokenCreated(TokenPublic):
    """A token just made, with its secret: shown this once, only its hash is kept."""

    token: str
