"""Fixtures of the page tests: the session's real services and API server, a walkable pool (random
unit features, no model) with a ready graph and a first version, tokens of each role, and headless
Chromium driven by selenium through Debian's chromedriver (no browser download)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMEDRIVER = Path("/usr/bin/chromedriver")


@dataclass(frozen=True)
class World:
    pool: str
    target: str
    run: str
    graph: str
    dataset: str  # has version 1 (a random selection) already
    ids: list[str]


def _chat(tag: str, i: int) -> dict:
    topics = ("arithmetic", "geometry", "a poem", "a recipe", "history", "python code")
    return {"messages": [{"role": "user", "content": f"{tag} question {i}: tell me about {topics[i % 6]} ({i})"},
                         {"role": "assistant", "content": f"Answer {i} about {topics[i % 6]}."}]}


@pytest.fixture(scope="session")
def api_url(services, settings) -> str:
    """The session's API server, which serves the pages too."""
    from gradwalk.platform.local.stack import ApiService

    server = ApiService(settings)
    server.spawn()
    server.wait_ready()
    return server.address


@pytest.fixture(scope="session")
def world(store, settings, api_url) -> World:
    """A pool of 240 rows with crafted features, a k=8 graph, and a dataset with version 1."""
    import numpy as np

    from gradwalk.graph.knn import build
    from gradwalk.platform.artifacts.feature_store import FeatureStore
    from gradwalk.platform.intake import pools
    from gradwalk.platform.work import feature_runs, jobs

    tag = f"ui{uuid.uuid4().hex[:6]}"
    pool, target, run = f"{tag}-pool", f"{tag}-target", f"{tag}-run"
    rows, dim = 240, 16
    pools.import_pool(store, pool, [_chat(pool, i) for i in range(rows)])
    pools.import_target(store, target, [_chat(target, i) for i in range(6)])
    ids = feature_runs.member_ids(store, pool)
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(rows, dim)) + 0.3).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    val = rng.normal(size=(6, dim)).astype(np.float32) + x[:6]
    val /= np.linalg.norm(val, axis=1, keepdims=True)
    features = FeatureStore(settings.artifacts)
    features.write_shard(run, "train", 0, ids, x)
    features.write_shard(run, f"val-{target}", 0, feature_runs.target_ids(store, target), val)
    store.write(
        "MATCH (p:Pool {name: $pool}), (t:Target {name: $target}) "
        "CREATE (fr:FeatureRun {id: $id, pool: $pool, targets: [$target], kind: 'gradient', status: 'complete', "
        "  parts: ['train', 'val-' + $target], dim: $dim, rows: $rows, rows_total: $rows, rows_done: $rows, "
        "  created_at: datetime()})-[:OF_POOL]->(p) CREATE (fr)-[:FOR_TARGET]->(t)",
        {"pool": pool, "target": target, "id": run, "dim": dim, "rows": rows})
    graph = build.build_graph(store, features, run, 8, 0.0, device="cpu").id
    dataset = f"{tag}-picked"
    first = jobs.submit(store, jobs.JobRequest(pool=pool, targets=[target], method="random", dataset=dataset,
                                               params={"ratio": 0.1, "seed": 1}), created_by="ui-tests")
    jobs.wait(store, first, timeout_s=300, poll_s=0.5)
    return World(pool, target, run, graph, dataset, ids)


@pytest.fixture(scope="session")
def tokens(store) -> dict[str, str]:
    from gradwalk.platform.access import auth

    suffix = uuid.uuid4().hex[:6]
    return {role: auth.create(store, f"ui-{role}-{suffix}", role) for role in ("reader", "curator")}


@pytest.fixture
def browser() -> Iterator:
    """Headless Chromium at a fixed size (screenshots look alike on every machine). A test fails if
    the content security policy refused anything on its pages (the browser's console says so)."""
    if not CHROMEDRIVER.exists() or not shutil.which("chromium"):
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/setup.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
        refused = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
        assert not refused, refused
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def screenshots_dir(tmp_path_factory) -> Path:
    """Where the page tests' screenshots go: GRADWALK_SCREENSHOTS_DIR when set (``docs/screenshots``
    remakes the README's), else a temporary folder, so a test run leaves the checkout as it was."""
    chosen = os.environ.get("GRADWALK_SCREENSHOTS_DIR")
    return Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def screenshot(screenshots_dir) -> Callable[[object, str], None]:
    """Save the page as NAME.png and open it again: the whole viewport, and not one flat colour."""
    from PIL import Image

    def save(driver, name: str) -> None:
        screenshots_dir.mkdir(parents=True, exist_ok=True)
        path = screenshots_dir / f"{name}.png"
        assert driver.save_screenshot(str(path)), path
        viewport = tuple(driver.execute_script("return [window.innerWidth, window.innerHeight]"))
        with Image.open(path) as image:
            assert image.size == viewport, (path, image.size, viewport)
            low, high = image.convert("L").getextrema()
            assert high - low > 64, f"{path} is nearly one colour ({low}..{high})"

    return save
