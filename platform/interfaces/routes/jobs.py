"""Selection jobs: submit, list, show (status and progress), cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from gradwalk import errors
from gradwalk.platform.catalog import listings
from gradwalk.platform.changes import jobs as job_changes
from gradwalk.platform.interfaces.routes.deps import ChangeDep, StoreDep
from gradwalk.platform.shared.schemas import JobCreate, JobPublic
from gradwalk.platform.work import jobs
from gradwalk.statuses import JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"])

JobStatusName = Annotated[JobStatus | None, Query(description="Only jobs in this status.")]


@router.post("", response_model=JobPublic, status_code=202, name="submit_job")
def submit_job(body: JobCreate, ctx: ChangeDep) -> JobPublic:
    """Check the request, record the job (with the caller's token) and queue it; poll it until it
    finishes. Needs a curator or admin token."""
    return job_changes.submit(ctx, jobs.JobRequest(**body.model_dump()))


@router.post("/like/{dataset}", response_model=JobPublic, status_code=202, name="submit_job_like")
def submit_job_like(dataset: Annotated[str, Path(max_length=200)], ctx: ChangeDep) -> JobPublic:
    """Run the dataset's last job again, as it was, on the grown pool; it publishes the next
    version, whose lineage says the generation it was selected from. Needs a curator or admin token."""
    return job_changes.submit_like(ctx, dataset)


@router.get("", response_model=list[JobPublic], name="list_jobs")
def list_jobs(store: StoreDep, status: JobStatusName = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[JobPublic]:
    return jobs.list_jobs(store, status=status, limit=limit)


@router.get("/{job_id}", response_model=JobPublic, name="get_job")
def get_job(job_id: str, store: StoreDep) -> JobPublic:
    try:
        return jobs.get(store, job_id)
    except errors.NotFound:
        raise listings.missing(store, "job", job_id) from None


@router.post("/{job_id}/cancel", response_model=JobPublic, name="cancel_job")
def cancel_job(job_id: str, ctx: ChangeDep) -> JobPublic:
    """Cancel a queued or running job: the curator token that submitted it, or an admin token."""
    return job_changes.cancel(ctx, job_id)
