"""Hardened pages: the browser headers on every page, REST answer, static file and docs page, and a
sign-in cookie that holds a server-side session id, never the token, ended by revoking the token,
by its age and by signing out."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import re
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from gradwalk import errors
from gradwalk.platform.access import auth, headers, sessions
from gradwalk.platform.interfaces.api import create_app
from gradwalk.platform.interfaces.ui import explore, loop, pages, versions
from gradwalk.platform.work import jobs

pytestmark = pytest.mark.services

COOKIE = "gradwalk_session"


def assert_hardened(answer: httpx.Response) -> None:
    assert answer.status_code < 500, f"{answer.request.method} {answer.request.url.path} ({answer.status_code})"
    assert_headers(answer)


def assert_headers(answer: httpx.Response) -> None:
    where = f"{answer.request.method} {answer.request.url.path} ({answer.status_code})"
    assert answer.headers.get("x-frame-options") == "DENY", where
    assert answer.headers.get("x-content-type-options") == "nosniff", where
    assert answer.headers.get("referrer-policy") == "same-origin", where
    policy = answer.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy, where
    script = re.search(r"script-src ([^;]*)", policy).group(1)
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script, where


@contextlib.contextmanager
def sign_in(api_url: str, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=60) as web:
        answer = web.post("/ui/signin", data={"token": token, "next": "/ui/"})
        assert answer.status_code == 303, answer.text
        yield web


def session_count(store, token_name: str) -> int:
    return store.read("MATCH (s:UiSession)-[:SIGNED_IN_WITH]->(:ApiToken {name: $name}) RETURN count(s) AS n",
                      {"name": token_name})[0]["n"]


def page_paths(world, job_id: str) -> dict[str, str]:
    """One address for each GET route of the pages, by its route template."""
    d, row = world.dataset, world.ids[0]
    return {
        "/ui/signin": "/ui/signin", "/ui/": "/ui/", "/ui/jobs": "/ui/jobs", "/ui/jobs/{job_id}": f"/ui/jobs/{job_id}",
        "/ui/jobs/{job_id}/progress": f"/ui/jobs/{job_id}/progress", "/ui/datasets": "/ui/datasets",
        "/ui/version-of-job": f"/ui/version-of-job?job={job_id}",
        "/ui/datasets/{name}": f"/ui/datasets/{d}", "/ui/datasets/{name}/diff/{a}/{b}": f"/ui/datasets/{d}/diff/1/1",
        "/ui/datasets/{name}/{version}": f"/ui/datasets/{d}/1",
        "/ui/datasets/{name}/{version}/export/{fmt}": f"/ui/datasets/{d}/1/export/jsonl",
        "/ui/datasets/{name}/{version}/why": f"/ui/datasets/{d}/1/why",
        "/ui/datasets/{name}/{version}/walk/{component}": f"/ui/datasets/{d}/1/walk/0",
        "/ui/instructions/{instruction_id}": f"/ui/instructions/{row}?graph={world.graph}",
        "/ui/instructions/{instruction_id}/neighbourhood": f"/ui/instructions/{row}/neighbourhood?graph={world.graph}",
        "/ui/cypher": "/ui/cypher", "/ui/catalog": "/ui/catalog", "/ui/catalog/pools/{name}": f"/ui/catalog/pools/{world.pool}",
        "/ui/catalog/runs/{run_id}": f"/ui/catalog/runs/{world.run}",
        "/ui/catalog/graphs/{graph_id}": f"/ui/catalog/graphs/{world.graph}",
        "/ui": "/ui", "/ui/{rest}": "/ui/no/such/page",
        "/ui/curate": "/ui/curate", "/ui/catalog/{kinds}/{name}/imports": f"/ui/catalog/pools/{world.pool}/imports",
        "/ui/catalog/runs/{run_id}/progress": f"/ui/catalog/runs/{world.run}/progress",
        "/ui/catalog/graphs/{graph_id}/progress": f"/ui/catalog/graphs/{world.graph}/progress",
    }


def test_every_page_rest_answer_static_file_and_docs_page_is_hardened(api_url, world, tokens, store):
    job_id = next(j.id for j in jobs.list_jobs(store, limit=500) if j.dataset == world.dataset)
    paths = page_paths(world, job_id)
    listed = [*create_app().routes, *pages.router.routes, *versions.router.routes, *explore.router.routes,
              *loop.router.routes]
    routes = {re.sub(r":path}", "}", r.path) for r in listed
              if getattr(r, "path", "").startswith("/ui") and "GET" in getattr(r, "methods", ())}
    assert routes == set(paths), "a page without an address here: add it"
    with sign_in(api_url, tokens["curator"]) as web:
        for path in paths.values():
            assert_hardened(web.get(path))
        for static in ("/ui/static/ui.js", "/ui/static/loop.js", "/ui/static/graphs.js", "/ui/static/ui.css",
                       "/ui/static/vendor/cytoscape/cytoscape.min.js"):
            answer = web.get(static)
            assert answer.status_code == 200
            assert_hardened(answer)
    bearer = {"Authorization": f"Bearer {tokens['reader']}"}
    with httpx.Client(base_url=api_url, timeout=60, cookies={COOKIE: "not-a-session"}) as web:
        for answer in (web.get("/ui/jobs"), web.get("/health"), web.get("/pools", headers=bearer), web.get("/pools"),
                       web.get("/pools/no-such-pool", headers=bearer), web.get("/no/such/route"),
                       web.post("/jobs", headers=bearer, json={"pool": 1})):
            assert_hardened(answer)


@pytest.mark.parametrize("path", sorted(headers.DOCS_PATHS))
def test_docs_pages_allow_only_their_own_inline_scripts(api_url, path):
    with httpx.Client(base_url=api_url, timeout=60) as web:
        answer = web.get(path)
    assert_hardened(answer)
    script = re.search(r"script-src ([^;]*)", answer.headers["content-security-policy"]).group(1)
    inline = re.findall(rb"<script>(.*?)</script>", answer.content, re.DOTALL)
    assert sorted(re.findall(r"'sha256-([^']+)'", script)) == sorted(
        base64.b64encode(hashlib.sha256(s).digest()).decode() for s in inline)


def test_the_pages_hold_no_inline_script_handler_or_style(api_url, world, tokens):
    with sign_in(api_url, tokens["curator"]) as web:
        for path in ("/ui/", "/ui/jobs", f"/ui/instructions/{world.ids[0]}?graph={world.graph}", "/ui/cypher",
                     "/ui/curate", f"/ui/catalog/runs/{world.run}", f"/ui/catalog/pools/{world.pool}/imports"):
            text = web.get(path).text
            assert not re.search(r"<script(?![^>]*\b(src|type=\"application/json\"))[^>]*>", text), path
            assert not re.search(r"\son[a-z]+=|\sstyle=|<style", text), path


def test_the_neighbourhood_refuses_bad_controls_in_plain_words(api_url, world, tokens):
    url = f"/ui/instructions/{world.ids[0]}/neighbourhood?graph={world.graph}"
    with sign_in(api_url, tokens["reader"]) as web:
        for bad, says in (("n=0", "n must be"), ("n=65", "n must be an integer in [1, 64]"), ("n=many", "n:"),
                          ("floor=1.5", "floor must be"), ("floor=nan", "floor must be"), ("floor=low", "floor:")):
            answer = web.get(f"{url}&{bad}")
            assert answer.status_code == 422 and says in html.unescape(answer.text), bad
            assert "Traceback" not in answer.text
        alone = web.get(f"/ui/instructions/{world.ids[0]}/neighbourhood?graph=no-such-graph").json()
        drawn = web.get(f"{url}&n=64&floor=-1").json()
    assert [n["id"] for n in alone["nodes"]] == [world.ids[0]] and alone["edges"] == [] and alone["range"] is None
    assert len(drawn["nodes"]) == 9 and drawn["floor"] == -1 and len(drawn["edges"]) == drawn["pairs"]


def test_the_cookie_is_a_session_id_that_revoking_the_token_ends(api_url, store):
    name = f"ui-session-{uuid.uuid4().hex[:6]}"
    token = auth.create(store, name, "reader")
    with sign_in(api_url, token) as web:
        set_cookie = web.post("/ui/signin", data={"token": token}).headers["set-cookie"]
        session = web.cookies[COOKIE]
        assert session != token and token not in set_cookie and token[3:] not in session
        assert {"httponly", "samesite=strict", "path=/ui"} <= {p.strip().lower() for p in set_cookie.split(";")}
        assert "secure" not in set_cookie.lower()  # plain http here; see the https test
        assert session_count(store, name) == 2 and store.read(
            "MATCH (s:UiSession {hash: $hash}) RETURN count(s) AS n", {"hash": auth.hash_token(session)})[0]["n"] == 1
        assert web.get("/ui/").status_code == 200
        auth.revoke(store, name)
        answer = web.get("/ui/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/signin")
    assert session_count(store, name) == 0


def test_a_session_past_its_age_is_refused(api_url, store):
    name = f"ui-age-{uuid.uuid4().hex[:6]}"
    token = auth.create(store, name, "reader")
    session, principal = sessions.start(store, token, age_s=1)
    assert sessions.principal(store, session) == principal == auth.Principal(name, "reader")
    time.sleep(1.2)
    with pytest.raises(errors.Unauthenticated, match="expired"):
        sessions.principal(store, session)
    with httpx.Client(base_url=api_url, cookies={COOKIE: session}) as web:
        assert web.get("/ui/", follow_redirects=False).status_code == 303
    sessions.start(store, token, age_s=60)  # a new sign-in sweeps the expired ones
    assert not store.read("MATCH (s:UiSession {hash: $hash}) RETURN s", {"hash": auth.hash_token(session)})
    with pytest.raises(errors.Unauthenticated):
        sessions.principal(store, None)


def test_signing_out_deletes_the_session_on_the_server(api_url, store):
    name = f"ui-out-{uuid.uuid4().hex[:6]}"
    token = auth.create(store, name, "curator")
    with sign_in(api_url, token) as web:
        session = web.cookies[COOKIE]
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', web.get("/ui/").text).group(1)
        out = web.post("/ui/signout", data={"csrf": csrf}, follow_redirects=False)
        assert out.status_code == 303 and session_count(store, name) == 0
    with httpx.Client(base_url=api_url, cookies={COOKIE: session}) as copied:  # a copy of the cookie is dead too
        assert copied.get("/ui/", follow_redirects=False).status_code == 303


def test_an_upload_past_the_body_limit_is_refused_as_a_page_on_the_pages_and_as_json_on_the_api(services, settings):
    small = settings.model_copy(update={"api_max_body_bytes": 1024})
    too_big = {"file": ("pool.jsonl", b"{}" * 1024)}
    with TestClient(create_app(small)) as web:
        page = web.post("/ui/curate/import", data={"kind": "pool", "name": "p"}, files=too_big)
        api = web.post("/pools/p/upload", files=too_big)
    assert page.status_code == api.status_code == 413
    assert page.headers["content-type"].startswith("text/html") and "<h1>413: LimitExceeded</h1>" in page.text
    assert "GRADWALK_API_MAX_BODY_BYTES" in page.text and "GRADWALK_API_MAX_BODY_BYTES" in api.json()["error"]["message"]
    assert_headers(page)
    assert_headers(api)


def test_the_cookie_is_secure_over_https(settings, store):
    token = auth.create(store, f"ui-https-{uuid.uuid4().hex[:6]}", "reader")
    with TestClient(create_app(settings), base_url="https://testserver") as web:
        answer = web.post("/ui/signin", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303 and "secure" in {p.strip().lower() for p in answer.headers["set-cookie"].split(";")}


def test_an_unexpected_failure_carries_the_headers_too(services, settings):
    """No input should reach a 500, but a bug can; its answer is as hardened as the rest."""
    app = create_app(settings)

    @app.get("/failing-on-purpose")
    def failing() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as web:
        answer = web.get("/failing-on-purpose")
    assert answer.status_code == 500 and answer.json()["error"]["type"] == "InternalError"
    assert "a bug" not in answer.text
    assert_headers(answer)
