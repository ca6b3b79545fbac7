"""Following long work recorded in the graph: poll a record until it ends, showing progress."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any, Protocol, TypeVar

from gradwalk import errors
from gradwalk.statuses import FeatureRunStatus

Progress = Callable[[int, int, str], None]


class Tracked(Protocol):
    """A record of long work: a job, a feature run, a graph."""

    @property
    def status(self) -> str: ...

    @property
    def error(self) -> str | None: ...


R = TypeVar("R", bound=Tracked)


def wait_until(read: Callable[[], R], *, done: Collection[str], failed: Collection[str], what: str,
               progress: Callable[[R], None] | None = None, timeout_s: float = 24 * 3600,
               poll_s: float = 1.0) -> R:
    """Poll ``read()`` until its ``status`` is in ``done`` (returned) or ``failed`` (raised as
    :class:`errors.WorkFailed`); :class:`errors.WaitTimedOut` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        record = read()
        if progress is not None:
            progress(record)
        if record.status in done:
            return record
        if record.status in failed:
            raise errors.WorkFailed(f"{what} {record.status}: {record.error or 'no error recorded'}")
        if time.monotonic() > deadline:
            raise errors.WaitTimedOut(f"{what} is still {record.status} after {timeout_s:.0f}s; it goes on")
        time.sleep(poll_s)


def feature_progress(update: Progress) -> Callable[[Any], None]:
    """Turn a feature run's record into progress-bar updates: warm-up steps (gradient runs), then rows."""
    def show(run: Any) -> None:
        if run.status == FeatureRunStatus.WARMING_UP and run.warmup_steps_total:
            update(run.warmup_steps_done or 0, run.warmup_steps_total, "warm-up")
        elif run.rows_total:
            update(min(run.rows_done + run.rows_in_flight, run.rows_total), run.rows_total, "features")
    return show


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator[Progress]:
    """A progress bar on stderr; the yielded ``update(done, total, stage)`` moves it."""
    import typer

    with typer.progressbar(length=1, label=label, file=sys.stderr) as bar:
        def update(done: int, total: int, stage: str = "") -> None:
            if stage:
                bar.label = f"{label}: {stage}"
            if total and total != bar.length:
                bar.length, bar.pos = total, 0
            bar.update(max(0, done - bar.pos))

        yield update
