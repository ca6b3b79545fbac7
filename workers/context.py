"""What a worker process holds once: its settings, its Neo4j store, its feature store.

Built lazily on first use in each (forked) worker process — a driver must never cross a fork —
and closed when the process exits. Each worker process also sets torch's CPU thread count from the
settings when it starts.
"""

from __future__ import annotations

import atexit
import functools

from celery.signals import worker_process_init

from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.settings import get_settings


@functools.cache
def graph_store() -> GraphStore:
    store = GraphStore.connect(get_settings(), wait_s=30)
    atexit.register(store.close)
    return store


@functools.cache
def feature_store() -> FeatureStore:
    return FeatureStore.from_settings(get_settings())


@worker_process_init.connect
def _limit_torch_threads(**_: object) -> None:
    threads = get_settings().torch_threads
    if threads:
        import torch

        torch.set_num_threads(threads)
