"""Short-lived signed links to a version's parquet file, for readers that cannot send a header.

``datasets.load_dataset("parquet", data_files=URL)`` and most download tools take a URL and
nothing else. A link carries, in one path segment, who asked for it (the token's name) and until
when it holds, with an HMAC-SHA256 over both and the dataset and version it names:

    /datasets/NAME/versions/V/data/signed/<base64url {"by", "exp"}>.<hex hmac>/train.parquet

It lives in the path, not the query string, so a link ends in the file's name like the header
route does (readers that choose a format by the name's extension see ``.parquet``). A link is refused (403, never 500) when it is malformed, forged, for another version,
expired, longer-lived than ``GRADWALK_LINK_MAX_AGE_S`` allows, or when its token was revoked since:
revoking a token ends its links at once. The key is ``GRADWALK_LINK_SECRET``; unset, a random one
is made once and kept in ``<state_dir>/link-secret`` (mode 0600), which one host's API processes
share. Neither the key nor a link is ever logged here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gradwalk import errors
from gradwalk.platform.access.auth import Principal, principal_of

if TYPE_CHECKING:
    from gradwalk.graph.store.adapter import GraphStore
    from gradwalk.settings import Settings

SECRET_FILE = "link-secret"
_CLOCK_SKEW_S = 60  # a link's lifetime may exceed the maximum by this much (hosts' clocks differ)
_MAX_LINK_CHARS = 1_000


@dataclass(frozen=True)
class Link:
    """A signed link's path segment and the unix time it expires."""

    segment: str
    expires_at: int


def secret(settings: Settings) -> bytes:
    """The signing key: GRADWALK_LINK_SECRET, else this host's own in ``<state_dir>/link-secret``
    (created on first use; two processes creating it at once agree on the first one written)."""
    if settings.link_secret is not None and settings.link_secret.get_secret_value():
        return settings.link_secret.get_secret_value().encode("utf-8")
    path = Path(settings.state_dir) / SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SECRET_FILE}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # fails on an existing name: the first writer wins
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    value = path.read_text(encoding="ascii").strip()
    if len(value) < 32:
        raise errors.ServiceUnavailable(f"{path} holds no usable link key: remove it (a new one is made) "
                                        "or set GRADWALK_LINK_SECRET")
    return value.encode("ascii")


def _signature(key: bytes, dataset: str, version: int, by: str, expires_at: int) -> str:
    message = json.dumps([dataset, version, by, expires_at], separators=(",", ":")).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(settings: Settings, caller: Principal, dataset: str, version: int, *,
         expires_in_s: int | None = None, now: float | None = None) -> Link:
    """A link to ``dataset`` version ``version`` for ``caller``, valid ``expires_in_s`` seconds
    (default and maximum: GRADWALK_LINK_MAX_AGE_S)."""
    longest = settings.link_max_age_s
    life = longest if expires_in_s is None else expires_in_s
    if isinstance(life, bool) or not isinstance(life, int) or not 1 <= life <= longest:
        raise errors.InvalidInput(f"expires_in_s must be a whole number of seconds from 1 to {longest} "
                                  "(GRADWALK_LINK_MAX_AGE_S)")
    expires_at = int(now if now is not None else time.time()) + life
    claims = json.dumps({"by": caller.name, "exp": expires_at}, separators=(",", ":")).encode("utf-8")
    payload = base64.urlsafe_b64encode(claims).decode("ascii").rstrip("=")
    return Link(f"{payload}.{_signature(secret(settings), dataset, version, caller.name, expires_at)}", expires_at)


def verify(store: GraphStore, settings: Settings, segment: str, dataset: str, version: int, *,
           now: float | None = None) -> Principal:
    """The principal whose live token signed ``segment`` for this version; :class:`NotAllowed`
    (403) for anything else, with a reason that names no secret."""
    refused = errors.NotAllowed("this signed link is not valid for this version: ask for a new one "
                                "(POST .../data/link) or send 'Authorization: Bearer <token>'")
    if not isinstance(segment, str) or len(segment) > _MAX_LINK_CHARS or segment.count(".") != 1:
        raise refused
    payload, signature = segment.split(".")
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise refused from None
    if not isinstance(claims, dict) or set(claims) != {"by", "exp"}:
        raise refused
    by, expires_at = claims["by"], claims["exp"]
    if not isinstance(by, str) or isinstance(expires_at, bool) or not isinstance(expires_at, int):
        raise refused
    expected = _signature(secret(settings), dataset, version, by, expires_at)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
        raise refused
    current = int(now if now is not None else time.time())
    if expires_at < current:
        raise errors.NotAllowed(f"this signed link expired {current - expires_at} s ago: ask for a new one "
                                "(POST .../data/link)")
    if expires_at - current > settings.link_max_age_s + _CLOCK_SKEW_S:
        raise refused  # signed under a longer limit than this server allows now
    rows = store.read("MATCH (t:ApiToken {name: $name}) WHERE t.revoked_at IS NULL "
                      "RETURN t.name AS name, t.role AS role", {"name": by})
    if not rows:
        raise errors.NotAllowed("the token that signed this link was revoked: ask for a new link")
    return principal_of(rows[0])
