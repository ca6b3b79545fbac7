"""The whole curation loop in a real browser, on the tests' small model: a curator uploads a pool
(one bad line, skipped and reported) and a target, starts a feature run and follows it, cancels a
second one, builds the run's graph, selects and opens the published version. A reader sees the
same pages with no button, and the server refuses the reader's POSTs."""

from __future__ import annotations

import html
import json
import re
import time
from datetime import UTC, datetime
from urllib.parse import unquote

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import Select

from gradwalk.platform.interfaces.ui.loop import eta_s, run_progress
from gradwalk.platform.shared.schemas import FeatureRunPublic
from gradwalk.platform.versions import datasets
from gradwalk.platform.work import feature_runs

from .test_browser import sign_in, wait

# The real model as small as a run gets (tests/reliability/conftest.py's tiny run): a rank-2 adapter
# on q only, 64 tokens, 64 dims, one warm-up epoch over a quarter of the pool.
ENGINE = {"lora_r": "2", "lora_alpha": "8", "lora_targets": "q_proj", "max_length": "64", "batch_size": "4",
          "proj_dim": "64"}
WARMUP = {"fraction": "0.25", "epochs": "1", "examples_per_step": "4"}
POOL_ROWS, TARGET_ROWS = 8, 2


def test_the_eta_assumes_the_pace_so_far_and_follows_the_stage():
    now = datetime(2026, 12, 7, 20, 0, 30, tzinfo=UTC)
    assert eta_s("2026-12-07T20:00:00.000000000Z", 10, 40, now) == 90.0  # 10 in 30 s: 30 more take 90 s
    assert eta_s("2026-12-07T20:00:00Z", 0, 40, now) is None and eta_s("2026-12-07T20:00:00Z", 40, 40, now) is None
    assert eta_s(None, 10, 40, now) is None
    run = FeatureRunPublic(id="fr-1", status="warming up", kind="gradient", pool="p", warmup_steps_done=2,
                           warmup_steps_total=8, rows_total=0, stage_at="2026-12-07T20:00:10Z")
    shown = run_progress(run, now)
    assert (shown["unit"], shown["done"], shown["total"], shown["eta_s"], shown["active"]) == (
        "warm-up steps", 2, 8, 60.0, True)
    done = run_progress(run.model_copy(update={"status": "complete", "rows_total": 6, "rows_done": 6}), now)
    assert (done["unit"], done["done"], done["total"], done["eta_s"], done["active"]) == ("rows", 6, 6, None, False)


def test_a_runs_page_names_its_model_and_the_default_by_name(api_url, world, tokens, store):
    """A run that names no model shows which one its workers use (it showed "None"); one that names
    a model shows that one."""
    named = feature_runs.create(store, world.pool, [world.target], kind="embedding", engine={"model": "/m/mini"},
                                warmup={})
    with httpx.Client(base_url=api_url, timeout=60) as web:
        web.post("/ui/signin", data={"token": tokens["reader"]})
        shown = {run: re.search(r'id="model">([^<]*)<', web.get(f"/ui/catalog/runs/{run}").text).group(1)
                 for run in (world.run, named)}
    assert shown == {world.run: "default (SmolLM2-135M-Instruct)", named: "/m/mini"}


def _chat_lines(tag: str, n: int) -> list[str]:
    topics = ("sums", "shapes", "poems", "soups")
    return [json.dumps({"messages": [{"role": "user", "content": f"{tag} {i}: say something about {topics[i % 4]}"},
                                     {"role": "assistant", "content": f"Something about {topics[i % 4]} ({i})."}]})
            for i in range(n)]


def _fill(driver, values: dict[str, str], prefix: str) -> None:
    for name, value in values.items():
        driver.find_element(By.ID, f"{prefix}{name}").send_keys(value)


def _upload(driver, api_url: str, kind: str, name: str, path, skip_invalid: bool = False) -> None:
    driver.get(api_url + "/ui/curate")
    Select(driver.find_element(By.ID, "import-kind")).select_by_visible_text(kind)
    driver.find_element(By.ID, "import-name").send_keys(name)
    driver.find_element(By.ID, "import-file").send_keys(str(path))
    if skip_invalid:
        driver.find_element(By.ID, "import-skip").click()
    driver.find_element(By.ID, "import-submit").click()
    wait(driver).until(seen.presence_of_element_located((By.ID, "imports")))


def _start_run(driver, api_url: str, pool: str, target: str) -> str:
    driver.get(api_url + "/ui/curate")
    Select(driver.find_element(By.ID, "run-pool")).select_by_visible_text(pool)
    Select(driver.find_element(By.ID, "run-targets")).select_by_visible_text(target)
    _fill(driver, ENGINE, "run-")
    _fill(driver, WARMUP, "run-")
    driver.find_element(By.ID, "run-submit").click()
    wait(driver).until(seen.presence_of_element_located((By.ID, "work")))
    return re.search(r"/ui/catalog/runs/([^/?#]+)$", driver.current_url).group(1)


def _finished(driver, status: str, timeout: float) -> None:
    """Wait until the live block, following the work and reloading once it ends, shows ``status``."""
    wait(driver, timeout).until(lambda d: d.find_element(By.ID, "work-status").text == status)


def test_a_curator_drives_the_loop_from_upload_to_a_published_version(browser, api_url, tokens, store, tmp_path,
                                                                       screenshot):
    started = time.monotonic()
    tag = f"loop{time.time_ns() % 10**8}"
    pool, target, dataset = f"{tag}-pool", f"{tag}-target", f"{tag}-picked"
    (tmp_path / "pool.jsonl").write_text("\n".join([*_chat_lines(pool, 4), '{"messages": "not a list"}',
                                                    *_chat_lines(pool, POOL_ROWS)[4:]]) + "\n")
    (tmp_path / "target.jsonl").write_text("\n".join(_chat_lines(target, TARGET_ROWS)) + "\n")
    sign_in(browser, api_url, tokens["curator"], then="/ui/curate")

    # Upload: the bad fifth line is skipped, and the import's report says where and why.
    _upload(browser, api_url, "pool", pool, tmp_path / "pool.jsonl", skip_invalid=True)
    assert re.search(r"/ui/catalog/pools/[^/]+/imports#import-", browser.current_url)
    report = browser.find_element(By.CSS_SELECTOR, "#imports tr[id^='import-']").text.split()
    assert report[-6:] == [str(POOL_ROWS + 1), str(POOL_ROWS), "0", "1", str(POOL_ROWS), str(POOL_ROWS)]
    reasons = [li.text for li in browser.find_elements(By.CSS_SELECTOR, ".skip-reasons li")]
    assert len(reasons) == 1 and reasons[0].startswith("pool.jsonl line 5: "), reasons
    screenshot(browser, "import-report")
    _upload(browser, api_url, "target", target, tmp_path / "target.jsonl")
    assert browser.find_element(By.CSS_SELECTOR, "#imports td:nth-child(3)").text == "validation"

    # A feature run with the form's settings, followed to the end; a second one cancelled at once.
    run = _start_run(browser, api_url, pool, target)
    cancelled = _start_run(browser, api_url, pool, target)
    browser.find_element(By.ID, "cancel-work").click()
    _finished(browser, "cancelled", 30)
    assert "cancelled by token" in browser.find_element(By.ID, "work-error").text
    assert not browser.find_elements(By.ID, "cancel-work")
    browser.get(f"{api_url}/ui/catalog/runs/{run}")
    screenshot(browser, "feature-run")
    _finished(browser, "complete", 240)
    rows = POOL_ROWS + TARGET_ROWS
    assert browser.find_element(By.ID, "work-count").text == f"{rows} / {rows} rows"
    assert feature_runs.get(store, run).engine["proj_dim"] == int(ENGINE["proj_dim"])
    assert feature_runs.get(store, cancelled).status == "cancelled"  # no late worker brought it back

    # Its graph, built from the run's page and followed until ready.
    browser.find_element(By.ID, "build-graph").click()
    assert Select(browser.find_element(By.ID, "graph-run")).first_selected_option.text == run
    k = browser.find_element(By.ID, "graph-k")
    k.clear()
    k.send_keys("4")
    browser.find_element(By.ID, "graph-submit").click()
    wait(browser).until(seen.presence_of_element_located((By.ID, "work")))
    graph = unquote(browser.current_url.rsplit("/", 1)[1])
    _finished(browser, "ready", 120)
    assert browser.find_element(By.ID, "work-count").text.endswith("blocks")

    # Select on it (the jobs page's form) and open the published version.
    browser.get(api_url + "/ui/jobs")
    Select(browser.find_element(By.ID, "pool")).select_by_visible_text(pool)
    targets = Select(browser.find_element(By.ID, "targets"))
    targets.deselect_all()
    targets.select_by_visible_text(target)
    Select(browser.find_element(By.ID, "graph")).select_by_visible_text(graph)
    Select(browser.find_element(By.ID, "feature_run")).select_by_visible_text(run)
    browser.find_element(By.ID, "dataset").send_keys(dataset)
    ratio = browser.find_element(By.ID, "ratio")
    ratio.clear()
    ratio.send_keys("0.5")
    browser.find_element(By.ID, "submit-job").click()
    wait(browser, 120).until(lambda d: d.find_element(By.ID, "job-status").text == "succeeded")
    browser.get(browser.find_element(By.ID, "version-link").get_attribute("href"))
    lineage = browser.find_element(By.ID, "lineage").text
    assert run in lineage and graph in lineage and pool in lineage
    version = datasets.describe(store, dataset, 1)
    assert 0 < len(browser.find_elements(By.CSS_SELECTOR, "#rows tr")[1:]) == version.size <= POOL_ROWS // 2
    print(f"the loop took {time.monotonic() - started:.1f} s")


def test_a_reader_sees_the_loop_without_buttons_and_the_server_refuses_its_posts(browser, api_url, world, tokens,
                                                                                 store, settings):
    from gradwalk.graph.knn import build
    from gradwalk.graph.knn.records import get_graph
    from gradwalk.platform.access import auth
    from gradwalk.platform.artifacts.feature_store import FeatureStore
    from gradwalk.platform.work import graph_queue

    # A run and a build the curator made that no worker is told of: they stay queued and building.
    curator = auth.authenticate(store, tokens["curator"]).name
    queued = feature_runs.create(store, world.pool, [world.target], engine={}, warmup={}, created_by=curator)
    building = build.start_build(store, FeatureStore(settings.artifacts), world.run, 5, 0.0)[0].id
    graph_queue.record_maker(store, building, curator)

    sign_in(browser, api_url, tokens["reader"], then="/ui/curate")
    assert browser.find_element(By.ID, "read-only")
    assert not browser.find_elements(By.CSS_SELECTOR, "#import-form, #run-form, #graph-form, button.danger")
    assert queued in browser.find_element(By.ID, "active-runs").text
    assert building in browser.find_element(By.ID, "active-graphs").text
    for page, status in ((f"runs/{queued}", "queued"), (f"graphs/{building}", "building")):
        browser.get(f"{api_url}/ui/catalog/{page}")
        assert browser.find_element(By.ID, "work-status").text == status
        assert not browser.find_elements(By.ID, "cancel-work")
    browser.get(f"{api_url}/ui/catalog/pools/{world.pool}/imports")
    assert browser.find_elements(By.CSS_SELECTOR, "#imports tr[id^='import-']")

    def posts(web: httpx.Client) -> dict[str, httpx.Response]:
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', web.get("/ui/curate").text).group(1)
        return {
            "upload": web.post("/ui/curate/import", data={"csrf": csrf, "kind": "pool", "name": f"{world.pool}-x"},
                               files={"file": ("x.jsonl", "\n".join(_chat_lines("x", 2)).encode())}),
            "start": web.post("/ui/curate/feature-run",
                              data={"csrf": csrf, "pool": world.pool, "targets": world.target}),
            "build": web.post("/ui/curate/graph", data={"csrf": csrf, "feature_run": world.run, "k": "3"}),
            "cancel run": web.post(f"/ui/catalog/runs/{queued}/cancel", data={"csrf": csrf}),
            "cancel build": web.post(f"/ui/catalog/graphs/{building}/cancel", data={"csrf": csrf}),
        }

    reader = browser.get_cookie("gradwalk_session")["value"]
    with httpx.Client(base_url=api_url, cookies={"gradwalk_session": reader}, timeout=60) as web:
        refused = posts(web)
    for what, answer in refused.items():
        assert answer.status_code == 403 and "role 'reader'" in html.unescape(answer.text), what
    assert feature_runs.get(store, queued).status == "queued" and get_graph(store, building).status == "building"
    assert f"{world.pool}-x" not in {p["name"] for p in store.read("MATCH (p:Pool) RETURN p.name AS name")}

    # The curator's cancels of the same two land; a second cancel is a conflict page, not a failure.
    with httpx.Client(base_url=api_url, timeout=60) as web:
        web.post("/ui/signin", data={"token": tokens["curator"], "next": "/ui/"})
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', web.get("/ui/curate").text).group(1)
        for page in (f"runs/{queued}", f"graphs/{building}"):
            assert web.post(f"/ui/catalog/{page}/cancel", data={"csrf": csrf}).status_code == 303
        again = web.post(f"/ui/catalog/runs/{queued}/cancel", data={"csrf": csrf})
    assert again.status_code == 409 and "only a queued" in again.text
    assert feature_runs.get(store, queued).status == "cancelled"
    stopped = get_graph(store, building)
    assert stopped.status == "failed" and f"cancelled by token '{curator}'" in stopped.error
