"""Following long work: every kind of work ends a wait the same way, so the CLI's exit codes and
the client's exceptions say the same thing for a job, a feature run, a graph and an evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gradwalk import errors
from gradwalk.platform.interfaces.client import JobFailed, JobTimeout
from gradwalk.platform.shared.waiting import wait_until


@dataclass
class Record:
    status: str
    error: str | None = None


def test_work_that_fails_raises_work_failed_with_its_error_and_exit_code_8():
    seen = iter([Record("running"), Record("running"), Record("cancelled", "cancelled by token 'ann'")])
    polled = []
    with pytest.raises(errors.WorkFailed, match="feature run fr-1 cancelled: cancelled by token 'ann'") as e:
        wait_until(lambda: next(seen), done={"complete"}, failed={"failed", "cancelled"}, what="feature run fr-1",
                   progress=polled.append, poll_s=0)
    assert e.value.exit_code == 8 and [r.status for r in polled] == ["running", "running", "cancelled"]
    assert issubclass(JobFailed, errors.WorkFailed)  # a job's wait raises the same family


def test_a_wait_that_runs_out_says_the_work_goes_on_and_exits_9():
    with pytest.raises(errors.WaitTimedOut, match="graph g is still building after 0s; it goes on") as e:
        wait_until(lambda: Record("building"), done={"ready"}, failed={"failed"}, what="graph g", timeout_s=0,
                   poll_s=0)
    assert isinstance(e.value, TimeoutError) and e.value.exit_code == 9
    assert issubclass(JobTimeout, errors.WaitTimedOut)


def test_work_that_ends_well_is_returned():
    seen = iter([Record("queued"), Record("ready")])
    assert wait_until(lambda: next(seen), done={"ready"}, failed={"failed"}, what="graph g", poll_s=0) == Record("ready")
