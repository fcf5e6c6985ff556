"""The app's HTTP API, called directly (gradio_client), as a curious or hostile user would.

Hiding a tab is not access control: these tests skip the browser and call the endpoints with a
session id that belongs to someone else. They use the same in-process app as the browser tests.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from gradio_client import Client
from web_harness import PERSONA_ID

from simulator.service.sign_in import token_hash
from simulator.web.app import PUBLIC_ENDPOINTS

REFUSED = "Not found, or you do not have access to it."


def one_turn(web: Any, sid: str, trainee: str, text: str) -> None:
    async def run() -> None:
        async for _ in web.ctx.practice.turn(sid, trainee, text):
            pass

    # in a thread of its own: Playwright's sync API may have left a loop running in this one
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def client(web: Any, name: str, role: str = "trainee", cohort: str | None = "spring") -> Client:
    user, password = web.user(name, role, cohort)
    return Client(web.url + "/", auth=(user, password), verbose=False, download_files=False)


def test_view_api_lists_only_the_deliberate_endpoints(web: Any) -> None:
    info = client(web, "api_viewer").view_api(print_info=False, return_format="dict")
    assert isinstance(info, dict)
    assert sorted(info["named_endpoints"]) == sorted(PUBLIC_ENDPOINTS)
    assert info["unnamed_endpoints"] == {}
    for name, spec in info["named_endpoints"].items():
        # no endpoint takes or returns State (State-only endpoints were the classic leak)
        assert all(p.get("component") != "State" for p in spec["parameters"]), name


def test_second_trainee_is_refused_every_endpoint_with_first_trainees_session_id(
        web: Any) -> None:
    first = client(web, "api_amy")
    sid = web.ctx.practice.start("api_amy", PERSONA_ID, mode="coach")
    # positive control: the owner can open her own session through the API
    first.predict(sid, api_name="/open_session")
    other = client(web, "api_ben")
    for endpoint in PUBLIC_ENDPOINTS:
        with pytest.raises(Exception, match="do not have access|role does not allow") as info:
            other.predict(sid, api_name=endpoint)
        assert "api_amy" not in str(info.value)
    # a made-up id gets the same answer as a real one (existence is not revealed)
    with pytest.raises(Exception, match=REFUSED.split(",")[0]):
        other.predict("0" * 32, api_name="/open_session")
    assert web.ctx.store.current_turns(sid)[-1].speaker == "client"  # nothing was written


def test_supervisor_of_another_cohort_is_refused_the_transcript(web: Any) -> None:
    web.user("api_cara", "trainee", "spring")
    sid = web.ctx.practice.start("api_cara", PERSONA_ID)
    one_turn(web, sid, "api_cara", "What would you like to talk about today?")
    own = client(web, "api_sup_spring", "supervisor", "spring")
    own.predict(sid, api_name="/transcript")  # positive control: their own cohort
    other = client(web, "api_sup_autumn", "supervisor", "autumn")
    with pytest.raises(Exception, match="do not have access"):
        other.predict(sid, api_name="/transcript")
    trainee = client(web, "api_dan")
    with pytest.raises(Exception, match="role does not allow"):
        trainee.predict(sid, api_name="/transcript")


def test_nothing_is_served_without_signing_in(web: Any) -> None:
    for path in ("/config", "/gradio_api/info"):
        r = httpx.get(web.url + path, timeout=10)
        assert r.status_code == 401, path
    for path in ("/gradio_api/openapi.json", "/gradio_api/upload"):  # not served at all
        assert httpx.get(web.url + path, timeout=10).status_code == 404, path
    assert httpx.get(web.url + "/", timeout=10).status_code == 303  # to the sign-in page
    with pytest.raises(Exception):  # noqa: B017 - gradio_client raises a plain exception
        Client(web.url + "/", verbose=False)
    r = httpx.post(web.url + "/login", data={"username": "api_amy", "password": "wrong-pass"},
                   timeout=10)
    assert r.status_code == 400
    assert "access-token" not in "".join(r.headers.get_list("set-cookie"))


def test_sign_in_cookie_logout_origin_and_size_limits(web: Any) -> None:
    name, password = web.user("api_cookie", "trainee", "spring")
    form = {"username": name, "password": password}
    with httpx.Client(base_url=web.url, timeout=30) as c:
        foreign = c.post("/login", data=form, headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403 and "counselsim_session" not in foreign.headers.get(
            "set-cookie", "")
        r = c.post("/login", data=form, headers={"Origin": web.url, "Accept": "text/html"})
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert "secure" not in cookie  # plain http on 127.0.0.1; https gets Secure
        assert c.get("/config").status_code == 200
        token = c.cookies["counselsim_session"]
        stored = web.ctx.store.get_sign_in(token_hash(token))
        assert stored is not None and stored.name == name
        assert c.get("/logout").status_code == 200  # a GET only shows the button
        assert c.get("/config").status_code == 200
        assert c.post("/logout").status_code == 200
        assert web.ctx.store.get_sign_in(token_hash(token)) is None
        c.cookies.set("counselsim_session", token)  # a copied cookie is dead after sign-out
        assert c.get("/config").status_code == 401
        big = c.post("/login", content=b"x" * (2 * 1024 * 1024),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert big.status_code == 413
    https = httpx.post(web.url + "/login", data=form,
                       headers={"X-Forwarded-Proto": "https"}, timeout=30)
    assert https.status_code == 200 and "secure" in https.headers["set-cookie"].lower()


def test_a_wrong_password_says_so_and_the_page_escapes_the_name(web: Any) -> None:
    web.user("api_wrong", "trainee", "spring")
    r = httpx.post(web.url + "/login", timeout=30, headers={"Accept": "text/html"},
                   data={"username": "<b>api_wrong</b>", "password": "not-the-password"})
    assert r.status_code == 400 and "Incorrect user name or password." in r.text
    assert "<b>api_wrong" not in r.text and "&lt;b&gt;api_wrong" in r.text


def test_unknown_handlers_are_refused_with_4xx_not_500(web: Any) -> None:
    """Issue 15: a made-up ``fn_index`` or API name is the caller's mistake (4xx), never a 500."""
    name, password = web.user("api_prober", "trainee", cohort="spring")
    with httpx.Client(base_url=web.url, timeout=30) as c:
        c.post("/login", data={"username": name, "password": password}).raise_for_status()
        known = [d["id"] for d in c.get("/config").json()["dependencies"]]
        for fn_index in (max(known) + 1, 99_999, -1):
            r = c.post("/gradio_api/queue/join", json={
                "data": [], "event_data": None, "fn_index": fn_index, "trigger_id": None,
                "session_hash": "probe1234"})
            assert r.status_code == 404, (fn_index, r.status_code, r.text)
        for body in ({"data": [], "fn_index": "x", "session_hash": "p"}, {"fn_index": 1}):
            r = c.post("/gradio_api/queue/join", json=body)
            assert 400 <= r.status_code < 500, (body, r.status_code)
        for path in ("/gradio_api/call/no_such_endpoint", "/gradio_api/run/no_such_endpoint"):
            r = c.post(path, json={"data": []})
            assert 400 <= r.status_code < 500, (path, r.status_code)
        # a real handler still joins (the body is passed on unchanged)
        r = c.post("/gradio_api/queue/join", json={
            "data": [None], "event_data": None, "fn_index": known[0], "trigger_id": None,
            "session_hash": "probe5678"})
        assert r.status_code == 200, r.text


def test_report_download_is_access_checked_and_leaves_no_copy(web: Any) -> None:
    """Issue 15: the report is streamed by a route that checks who asks (owner, the cohort's
    supervisor, an admin); nobody else gets it, and no transcript is written to the temp folder."""
    import tempfile
    from pathlib import Path

    owner, owner_pw = web.user("dl_owner", "trainee", cohort="dl")
    sid = web.ctx.practice.start(owner, PERSONA_ID, mode="coach")
    secret = "the wedding in Gdansk"
    one_turn(web, sid, owner, f"You mentioned {secret}.")
    def copies() -> set[Path]:
        """Report files in the temp folder and in Gradio's file cache (where a view used to
        leave one); not a walk of the whole temp folder, which other programs change under it."""
        tmp = Path(tempfile.gettempdir())
        cache = Path(os.environ.get("GRADIO_TEMP_DIR") or tmp / "gradio")
        return set(tmp.glob("counselsim-report-*")) | (
            set(cache.rglob("counselsim-report-*")) if cache.is_dir() else set())

    before = copies()

    def fetch(name: str | None, password: str | None, path: str) -> httpx.Response:
        with httpx.Client(base_url=web.url, timeout=30) as c:
            if name:
                c.post("/login", data={"username": name, "password": password}
                       ).raise_for_status()
            return c.get(path)

    url = f"/reports/{sid}.html"
    r = fetch(owner, owner_pw, url)
    assert r.status_code == 200 and secret in r.text
    assert r.headers["content-disposition"].startswith("attachment;")
    assert "no-store" in r.headers["cache-control"]
    assert web.ctx.report(sid)[1] == url  # the page's link is this route
    sup, sup_pw = web.user("dl_sup", "supervisor", cohort="dl")
    assert fetch(sup, sup_pw, url).status_code == 200
    for name, role, cohort in (("dl_other", "trainee", "dl"), ("dl_sup2", "supervisor", "x")):
        who, pw = web.user(name, role, cohort=cohort)
        r = fetch(who, pw, url)
        assert r.status_code == 404 and secret not in r.text, name
        assert fetch(who, pw, "/reports/0000.html").text == r.text  # existence not revealed
    assert fetch(None, None, url).status_code == 401
    assert copies() == before
