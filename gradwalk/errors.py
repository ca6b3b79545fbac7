"""Error families shared by every room.

The API and the CLI map them wholesale (404/403/409/422/503 and exit codes), so code raises
the family that says what the caller can do about it, with a message a person can act on.
"""

from __future__ import annotations


class GradwalkError(Exception):
    """Base of every error gradwalk raises on purpose."""

    http_status = 500
    exit_code = 1


class InvalidInput(GradwalkError):
    """The request or a record is malformed; the message names the record and the field."""

    http_status = 422
    exit_code = 2


class NotFound(GradwalkError):
    http_status = 404
    exit_code = 3


class Conflict(GradwalkError):
    """The request clashes with existing state (a name taken, a lock held, a file edited)."""

    http_status = 409
    exit_code = 4


class NotAllowed(GradwalkError):
    """The request would break a rule (write through the read-only endpoint, change a version)."""

    http_status = 403
    exit_code = 5


class Unauthenticated(GradwalkError):
    """The request carries no valid API token."""

    http_status = 401
    exit_code = 7


class ServiceUnavailable(GradwalkError):
    """A backing service (Neo4j, Redis, a worker) cannot be reached or could not start."""

    http_status = 503
    exit_code = 6


class WorkFailed(GradwalkError):
    """Long work that was followed (a selection job, a feature run, a graph build, an evaluation)
    ended failed or cancelled; the message is the error it recorded."""

    exit_code = 8


class WaitTimedOut(GradwalkError, TimeoutError):
    """Following long work gave up after its timeout; the work itself goes on."""

    exit_code = 9


class LimitExceeded(InvalidInput):
    """The request or its answer is bigger than a configured limit; the message names the limit
    and the setting that raises it."""

    http_status = 413


class TimeLimitExceeded(InvalidInput):
    """The request ran past the API's wall-time limit; the message names the limit."""

    http_status = 408
