"""Selection jobs: submit one, run a dataset's last job again on its grown pool, cancel one."""

from __future__ import annotations

from gradwalk.platform.changes import Context
from gradwalk.platform.shared.schemas import JobPublic
from gradwalk.platform.versions import generations
from gradwalk.platform.work import jobs as job_records


def submit(ctx: Context, request: job_records.JobRequest) -> JobPublic:
    """Check the request, record the job (made by the caller's token) and queue it (curators)."""
    ctx.caller.require("curator", "submitting a selection job")
    return job_records.get(ctx.store, job_records.submit(ctx.store, request, created_by=ctx.caller.name))


def submit_like(ctx: Context, dataset: str) -> JobPublic:
    """Run ``dataset``'s last job again, as it was, on the grown pool: its next version (curators)."""
    ctx.caller.require("curator", f"submitting the next version of {dataset!r}")
    return submit(ctx, generations.like(ctx.store, dataset))


def cancel(ctx: Context, job_id: str) -> JobPublic:
    """Cancel a queued or running job: the token that submitted it, or an admin's."""
    ctx.caller.require("curator", f"cancelling job {job_id}")
    ctx.caller.require_owner(job_records.get(ctx.store, job_id).created_by, f"job {job_id}")
    return job_records.cancel(ctx.store, job_id)
