"""The pages in a real browser (headless Chromium): sign in, submit a G2IS job and watch it finish,
open its version, the diff with version 1, an instruction's neighbourhood and the walk, and a
Cypher query; a reader sees no submit or cancel. The screenshots in docs/screenshots come from here."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import Select, WebDriverWait

from gradwalk.graph.selection.registry import METHODS
from gradwalk.platform.interfaces.ui import queries
from gradwalk.platform.versions import datasets

pytestmark = pytest.mark.services


def wait(driver, timeout: float = 60):
    """Polls through the page's own reload when its job finishes."""
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(StaleElementReferenceException, NoSuchElementException))


def sign_in(driver, api_url: str, token: str, then: str = "/ui/") -> None:
    driver.get(api_url + then)
    wait(driver).until(seen.presence_of_element_located((By.ID, "token")))
    assert "/ui/signin" in driver.current_url  # no cookie yet: the page sends us to sign in
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "signin").click()
    wait(driver).until(seen.presence_of_element_located((By.ID, "whoami")))


def drawn(driver, element_id: str) -> dict:
    """What cytoscape holds in the graph box ``element_id`` once drawn: node and edge counts."""
    wait(driver).until(lambda d: d.execute_script(f"return document.getElementById('{element_id}').dataset.ready"))
    return driver.execute_script(
        f"const cy = document.getElementById('{element_id}').cy;"
        "return {nodes: cy.nodes().length, edges: cy.edges().length, steps: cy.edges('.step').length,"
        " anchors: cy.nodes('.anchor').length};")


def neighbourhood(driver) -> dict:
    """What the neighbourhood box draws: the row, its neighbours in order, each node's rendered
    label, the row's own lines (spokes) and the lines among the neighbours with the floor they clear."""
    wait(driver).until(lambda d: d.execute_script("return document.getElementById('neighbourhood').dataset.ready"))
    found = driver.execute_script(
        "const box = document.getElementById('neighbourhood'), cy = box.cy;"
        "return {center: cy.nodes('.center')[0].id(), near: cy.nodes().not('.center').map((n) => n.id()),"
        " labels: cy.nodes().map((n) => n.style('label')), spokes: cy.edges('.spoke').length,"
        " edges: cy.edges().not('.spoke').map((e) => [e.data('source'), e.data('target')]),"
        " floor: Number(box.dataset.floor)};")
    return {**found, "edges": sorted(sorted(pair) for pair in found["edges"])}


def redrawn(driver, move) -> dict:
    """The neighbourhood after ``move`` (a change of its controls) has been drawn again."""
    driver.execute_script("document.getElementById('neighbourhood').dataset.ready = ''")
    move()
    return neighbourhood(driver)


def pairs_at_or_above(store, graph: str, ids: list[str], floor: float) -> list[list[str]]:
    """The pairs of ``ids`` joined by an edge of ``graph`` (either way) whose cosine is at least ``floor``."""
    rows = store.read("MATCH (a:Instruction)-[r:SIMILAR {graph: $g}]->(b:Instruction) "
                      "WHERE a.id IN $ids AND b.id IN $ids AND r.w >= $floor RETURN a.id AS a, b.id AS b",
                      {"g": graph, "ids": ids, "floor": floor})
    return sorted([list(pair) for pair in {tuple(sorted((r["a"], r["b"]))) for r in rows}])


def assert_hover_shows_more(driver, store, box: str, node: str, heading: str) -> None:
    """The mouse on ``node`` shows a tip with ``heading`` and the row's whole first turn, which its
    label only starts."""
    driver.execute_script("document.getElementById(arguments[0]).scrollIntoView({block: 'center'})", box)
    x, y, label = driver.execute_script(
        "const b = document.getElementById(arguments[0]), n = b.cy.getElementById(arguments[1]),"
        " p = n.renderedPosition(), r = b.getBoundingClientRect();"
        " return [r.left + b.clientLeft + p.x, r.top + b.clientTop + p.y, n.style('label')];", box, node)
    tip = driver.find_element(By.ID, f"{box}-tip")
    text = queries.preview(store.read("MATCH (i:Instruction {id: $id}) RETURN i.messages AS m", {"id": node})[0]["m"])
    tries = iter(range(100))

    def shown(d) -> bool:
        """Moves onto the node (again, a pixel aside: cytoscape may still hold the box's place from
        before the scroll) until the tip shows its own text, not a node's crossed on the way."""
        moving = ActionBuilder(d)
        moving.pointer_action.move_to_location(int(x) + next(tries) % 2, int(y))
        moving.perform()
        return tip.is_displayed() and text in tip.text

    wait(driver, 20).until(shown)
    assert heading in tip.text and len(label) < len(text)


def test_a_curator_runs_a_walk_and_follows_it_to_the_rows(browser, api_url, world, tokens, store, screenshot):
    sign_in(browser, api_url, tokens["curator"])
    assert browser.find_element(By.ID, "role").text == "curator"
    assert "submit selection jobs" in browser.find_element(By.ID, "rights").text
    screenshot(browser, "overview")

    browser.get(api_url + "/ui/jobs")
    described = browser.find_element(By.ID, "method-help").text
    for method in METHODS.values():  # each method, what it does and its parameters, beside the form
        assert method.name in described and method.description in described
        assert all(name in described for name in method.defaults())
    Select(browser.find_element(By.ID, "pool")).select_by_visible_text(world.pool)
    targets = Select(browser.find_element(By.ID, "targets"))
    targets.deselect_all()
    targets.select_by_visible_text(world.target)
    Select(browser.find_element(By.ID, "method")).select_by_visible_text("g2is")
    Select(browser.find_element(By.ID, "graph")).select_by_visible_text(world.graph)
    Select(browser.find_element(By.ID, "feature_run")).select_by_visible_text(world.run)
    browser.find_element(By.ID, "dataset").send_keys(world.dataset)
    ratio = browser.find_element(By.ID, "ratio")
    ratio.clear()
    ratio.send_keys("0.2")
    browser.find_element(By.ID, "submit-job").click()

    wait(browser).until(seen.presence_of_element_located((By.ID, "job-percent")))
    wait(browser, 300).until(lambda d: d.find_element(By.ID, "job-percent").text == "100 %")
    wait(browser, 60).until(lambda d: d.find_element(By.ID, "job-status").text == "succeeded")
    wait(browser).until(seen.presence_of_element_located((By.ID, "components")))
    components = browser.find_elements(By.CSS_SELECTOR, "#components tr")[1:]
    assert components, "the G2IS components table lists the walk's components"
    screenshot(browser, "job")

    browser.get(browser.find_element(By.ID, "version-link").get_attribute("href"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#rows tr")[1:]
    size = datasets.describe(store, world.dataset, 2).size
    assert len(rows) == size and 0 < size <= 48  # at most floor(240 × 0.2), all on the first page of 50
    assert world.pool in rows[0].text  # each row shows its text
    assert [li.text.split("\n")[0] for li in browser.find_elements(By.CSS_SELECTOR, "#lineage li span")] == [
        "version", "job", "feature run", "graph", "targets", "pool", "evaluations"]
    screenshot(browser, "version")

    # Search the rows by text: one topic of six.
    search = browser.find_element(By.ID, "row-search")
    search.send_keys("geometry")
    search.submit()
    found = browser.find_elements(By.CSS_SELECTOR, "#rows tr")[1:]
    assert found and len(found) < size and all("geometry" in r.text for r in found)

    # The diff with version 1, side by side by text.
    browser.get(f"{api_url}/ui/datasets/{world.dataset}/2")
    browser.find_element(By.ID, "diff-1").click()
    counts = browser.find_element(By.ID, "diff-counts").text
    added = int(re.search(r"(\d+) added", counts).group(1))
    removed = int(re.search(r"(\d+) removed", counts).group(1))
    pairs = browser.find_elements(By.CSS_SELECTOR, "#diff tr")[1:]
    assert len(pairs) == max(added, removed) > 0
    assert len(browser.find_elements(By.CSS_SELECTOR, "#diff td.added a")) == added
    assert len(browser.find_elements(By.CSS_SELECTOR, "#diff td.removed a")) == removed
    assert world.pool in browser.find_element(By.CSS_SELECTOR, "#diff td.added").text
    screenshot(browser, "diff")

    # An instruction's neighbourhood: the row and its strongest neighbours (all 8 of a k = 8 graph).
    browser.get(f"{api_url}/ui/datasets/{world.dataset}/2")
    first = browser.find_element(By.CSS_SELECTOR, "#rows a.row-link")
    instruction = first.get_attribute("href").split("/ui/instructions/")[1].split("?")[0]
    first.click()
    graph = neighbourhood(browser)
    assert graph["center"] == instruction and len(graph["near"]) == 8 and graph["spokes"] == 8
    assert graph["edges"] == pairs_at_or_above(store, world.graph, graph["near"], graph["floor"])
    assert all(label.startswith(world.pool) for label in graph["labels"])  # each node shows its text
    assert "v2" in browser.find_element(By.ID, "in-versions").text
    assert_hover_shows_more(browser, store, "neighbourhood", graph["near"][0], "cosine")
    browser.execute_script("document.getElementById('in-versions').scrollIntoView()")
    screenshot(browser, "instruction")

    # The floor and the count redraw it in place: fewer pairs at the highest floor, every one at the lowest.
    floor = browser.find_element(By.ID, "floor")
    highest = redrawn(browser, lambda: floor.send_keys(Keys.END))
    lowest = redrawn(browser, lambda: floor.send_keys(Keys.HOME))
    for drawn_now in (lowest, highest):
        assert drawn_now["edges"] == pairs_at_or_above(store, world.graph, drawn_now["near"], drawn_now["floor"])
    assert len(lowest["edges"]) > len(highest["edges"]) and lowest["floor"] < highest["floor"]
    count = browser.find_element(By.ID, "neighbours")
    fewer = redrawn(browser, lambda: (count.send_keys(Keys.CONTROL, "a"), count.send_keys("3", Keys.ENTER)))
    assert fewer["near"] == graph["near"][:3] and fewer["spokes"] == 3 and len(fewer["labels"]) == 4
    assert browser.find_element(By.ID, "neighbours").get_attribute("value") == "3"  # no reload

    # Why these rows: the walk of component 0 drawn as a path from its anchor, each node labelled.
    browser.get(f"{api_url}/ui/datasets/{world.dataset}/2/why")
    walk = drawn(browser, "walk-graph")
    walked = store.read(
        "MATCH (:Dataset {name: $d})-[:HAS_VERSION]->(v {version: 2})-[c:CONTAINS]->() WHERE c.component = 0 "
        "RETURN count(*) AS n", {"d": world.dataset})[0]["n"]
    assert walk["nodes"] == walked and walk["anchors"] == 1 and walk["steps"] == walked - 1
    labels = browser.execute_script("return document.getElementById('walk-graph').cy.nodes()"
                                    ".map((n) => [n.data('step'), n.style('label')]);")
    assert all(label.startswith(f"{step}. {world.pool}") for step, label in labels)
    anchor = browser.execute_script("return document.getElementById('walk-graph').cy.nodes('.anchor')[0].id();")
    assert_hover_shows_more(browser, store, "walk-graph", anchor, "step 0, reached by anchor")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#walk-steps li")) == walked
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart")  # mix and budget charts
    screenshot(browser, "why")


def test_the_cypher_console_runs_a_documented_query_as_table_and_graph(browser, api_url, world, tokens, screenshot):
    sign_in(browser, api_url, tokens["reader"], then="/ui/cypher")
    examples = browser.find_elements(By.CSS_SELECTOR, "#examples a.example")
    assert len(examples) >= 9
    strongest = next(e for e in examples if "10 instructions most similar" in e.text)
    strongest.click()
    assert "$graph" in browser.find_element(By.ID, "query").get_attribute("value")
    params = browser.find_element(By.ID, "params")
    params.clear()
    params.send_keys(f"graph={world.graph}\nid={world.ids[0]}")
    browser.find_element(By.ID, "run-query").click()
    wait(browser).until(seen.presence_of_element_located((By.ID, "result")))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#result tr")[1:]) == 8

    query = browser.find_element(By.ID, "query")
    query.clear()
    query.send_keys("MATCH (i:Instruction {id: $id})-[r:SIMILAR {graph: $graph}]->(n) RETURN i, r, n")
    browser.find_element(By.ID, "run-query").click()
    graph = drawn(browser, "result-graph")
    assert graph["nodes"] == 9 and graph["edges"] == 8
    screenshot(browser, "cypher")

    query = browser.find_element(By.ID, "query")
    query.clear()
    query.send_keys("MATCH (n) DETACH DELETE n")
    browser.find_element(By.ID, "run-query").click()
    problem = wait(browser).until(seen.presence_of_element_located((By.ID, "cypher-problem")))
    assert "read-only" in problem.text and "write" in problem.text


def test_a_reader_sees_no_submit_or_cancel_and_the_server_refuses_them(browser, api_url, world, tokens, store):
    from gradwalk.platform.work import jobs

    queued = jobs.create(store, jobs.JobRequest(pool=world.pool, targets=[world.target], method="random",
                                                dataset=f"{world.dataset}-held", params={"ratio": 0.1}))
    sign_in(browser, api_url, tokens["reader"], then="/ui/jobs")
    assert browser.find_element(By.CSS_SELECTOR, "#whoami .role").text == "reader"
    assert not browser.find_elements(By.ID, "submit-job")
    browser.get(f"{api_url}/ui/jobs/{queued}")
    assert browser.find_element(By.ID, "job-status").text == "queued"
    assert not browser.find_elements(By.ID, "cancel-job")

    cookie = browser.get_cookie("gradwalk_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != tokens["reader"]
    with httpx.Client(base_url=api_url, cookies={"gradwalk_session": cookie["value"]}) as web:
        page = web.get("/ui/jobs")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
        cancel = web.post(f"/ui/jobs/{queued}/cancel", data={"csrf": csrf})
        submit = web.post("/ui/jobs", data={"csrf": csrf, "pool": world.pool, "targets": world.target,
                                            "method": "random", "dataset": "nope", "ratio": "0.1"})
        forged = web.post(f"/ui/jobs/{queued}/cancel", data={"csrf": "0" * 64})
    assert cancel.status_code == submit.status_code == forged.status_code == 403
    assert "role 'reader'" in html.unescape(cancel.text) and "security value" in forged.text
    assert "Traceback" not in cancel.text + submit.text
    assert jobs.get(store, queued).status == "queued"
    jobs.cancel(store, queued)


def test_unknown_ids_are_404_pages_and_bad_tokens_go_back_to_sign_in(browser, api_url, world, tokens):
    sign_in(browser, api_url, tokens["reader"])
    for path in ("/ui/jobs/no-such-job", f"/ui/datasets/{world.dataset}/99", "/ui/instructions/nope",
                 "/ui/catalog/graphs/nope", "/ui/no/such/page"):
        browser.get(api_url + path)
        assert browser.find_element(By.CLASS_NAME, "error-title").text == "Not found", path
        assert "Traceback" not in browser.page_source
    with httpx.Client(base_url=api_url, cookies={"gradwalk_session": "not-a-session"}) as web:
        answer = web.get("/ui/datasets", follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/signin?next=")
        wrong = web.post("/ui/signin", data={"token": "gw_wrong", "next": "/ui/"})
        assert wrong.status_code == 401 and "unknown, revoked or expired" in wrong.text
        outside = web.post("/ui/signin", data={"token": tokens["reader"], "next": "https://elsewhere.example/"},
                           follow_redirects=False)
        assert outside.headers["location"] == "/ui/"  # never an open redirect


def test_services_up_prints_the_page_address(settings, api_url):
    from gradwalk.platform.local import stack

    said: list[str] = []
    stack.up(settings, echo=said.append)  # everything runs already: it only checks and reports
    assert any(f"{api_url}/ui" in line for line in said), said
