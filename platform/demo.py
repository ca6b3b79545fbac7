"""The main job on the embedded default.

For now (foundation stage) it brings the local services up and round-trips a record through
Neo4j and a task through each worker queue; the full pipeline (import → features → graph →
selection → dataset version) replaces the smoke step as those stages land.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from gradwalk import errors
from gradwalk.settings import Settings


def run_demo(settings: Settings, *, echo: Callable[[str], None] = print) -> dict[str, float]:
    from gradwalk.graph.store import GraphStore
    from gradwalk.platform import services
    from gradwalk.workers.app import QUEUES, app

    timings: dict[str, float] = {}
    start = time.monotonic()
    services.up(settings, echo=echo)
    timings["services_up_s"] = time.monotonic() - start

    start = time.monotonic()
    token = f"demo-{uuid.uuid4()}"
    with GraphStore.connect(settings) as store:
        store.write("CREATE (:DemoPing {token: $token, at: datetime()})", {"token": token})
        found = store.read("MATCH (p:DemoPing {token: $token}) RETURN p.token AS token", {"token": token})
        store.write("MATCH (p:DemoPing {token: $token}) DELETE p", {"token": token})
    if found != [{"token": token}]:
        raise errors.ServiceUnavailable(f"Neo4j did not return the record just written: {found}")
    for queue in QUEUES:
        reply = app.send_task("gradwalk.system.ping", queue=queue).get(timeout=60)
        echo(f"worker on queue {queue}: pid {reply['pid']}, device {reply['device']}")
    timings["smoke_s"] = time.monotonic() - start
    echo(f"smoke job: Neo4j round trip and worker pings ok ({timings['smoke_s']:.1f}s)")
    echo("services stay up: `gradwalk services status`, stop them with `gradwalk services down`")
    return timings
