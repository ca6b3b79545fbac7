"""The status of every kind of record, one str enum per kind, in one place every room may import
(the graph room reads feature runs and writes graphs; the platform, the workers and the client read
them all). The enum members are the strings Neo4j stores, so Cypher text spells the same values.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """A selection job's life: queued, running, then one of the finished three."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


JOB_FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class CollectionStatus(StrEnum):
    """A pool's or target's life: new until its first import claims it, importing, ready; a
    delete marks it deleting and then removes it (no tombstone)."""

    NEW = "new"
    IMPORTING = "importing"
    READY = "ready"
    DELETING = "deleting"


class FeatureRunStatus(StrEnum):
    """A feature run's life: queued, warming up, featurizing, then complete, failed or cancelled; a
    complete run is extended (extending, then complete again); deleting, then deleted (a tombstone)."""

    QUEUED = "queued"
    WARMING_UP = "warming up"
    FEATURIZING = "featurizing"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXTENDING = "extending"
    DELETING = "deleting"
    DELETED = "deleted"


FEATURE_RUN_FINISHED = (FeatureRunStatus.COMPLETE, FeatureRunStatus.FAILED, FeatureRunStatus.CANCELLED)
FEATURE_RUN_BUSY = (FeatureRunStatus.QUEUED, FeatureRunStatus.WARMING_UP, FeatureRunStatus.FEATURIZING)


class GraphStatus(StrEnum):
    """An instruction graph's life: building (or extending), then ready or failed; deleting, then
    deleted (a tombstone when a job used it)."""

    BUILDING = "building"
    EXTENDING = "extending"
    READY = "ready"
    FAILED = "failed"
    DELETING = "deleting"
    DELETED = "deleted"


class VersionStatus(StrEnum):
    """A dataset version's life: pending while its rows are staged, complete, then maybe retired."""

    PENDING = "pending"
    COMPLETE = "complete"
    RETIRED = "retired"


class EvaluationStatus(StrEnum):
    """An evaluation's life, as a job's: queued, running, then succeeded (its figures kept),
    failed or cancelled (no figures, no scores file)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


EVALUATION_FINISHED = (EvaluationStatus.SUCCEEDED, EvaluationStatus.FAILED, EvaluationStatus.CANCELLED)
