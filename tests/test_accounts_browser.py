"""Accounts in real Chromium: first sign-in with a forced change, an admin's reset, disable and
delete in the Users tab, and one trainee in two tabs of one session."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from web_harness import PERSONA_ID, assert_accessible, login, shot, sign_in_form

from simulator.service.users import add_user

pytestmark = pytest.mark.browser


def choose(page: Page, elem_id: str, name: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=re.compile(f"^{re.escape(name)}$")).click()


def change_password(page: Page, current: str, new: str) -> None:
    page.locator("#current").fill(current)
    page.locator("#new").fill(new)
    page.locator("#repeat").fill(new)
    page.get_by_role("button", name="Change password").click()


def test_first_sign_in_forces_a_password_change(page: Page, web: Any) -> None:
    _, one_time = add_user(web.ctx.store, "fresh_fay", "trainee", cohort="spring", by="test")
    assert one_time
    sign_in_form(page, web.url, "fresh_fay", one_time)
    expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
    expect(page.locator("body")).to_contain_text("choose your own password")
    assert_accessible(page, "forced password change")
    page.goto(web.url + "/")  # the app itself is not served until the password is changed
    expect(page).to_have_url(re.compile("/password$"))
    change_password(page, one_time, "password123")  # a common one is refused, with the reason
    expect(page.locator("#problem")).to_contain_text("most common")
    shot(page, "accounts-1-forced-change-refused")
    change_password(page, one_time, "lantern by the river")
    page.locator("#cs-header").get_by_text("Signed in as fresh_fay").wait_for(timeout=60_000)
    assert not web.ctx.store.get_user("fresh_fay").must_change_password


def test_admin_resets_disables_and_deletes_an_account(page: Page, web: Any,
                                                      browser: Browser) -> None:
    admin, admin_password = web.user("ad_min", "admin")
    name, password = web.user("rita_reset", "trainee", cohort="spring")
    sid = web.ctx.practice.start(name, PERSONA_ID)
    trainee = browser.new_page(viewport={"width": 1366, "height": 768})
    try:
        login(trainee, web.url, name, password)
        login(page, web.url, admin, admin_password)
        page.get_by_role("tab", name="Users").click()
        expect(page.locator("#ad-users")).to_contain_text(admin, timeout=30_000)
        # a class has more accounts than the table draws at once: the table's search finds one
        search = page.locator("#ad-users input[placeholder^='Search']")
        search.fill(name)
        expect(page.locator("#ad-users")).to_contain_text(name, timeout=30_000)
        # reset: a one-time password shown once; the trainee's sign-in ends
        choose(page, "ad-who", name)
        page.locator("#ad-reset").click()
        result = page.locator("#ad-result")
        expect(result).to_contain_text("One-time password", timeout=30_000)
        one_time = result.locator("code").inner_text()
        shot(page, "accounts-2-reset")
        trainee.reload()
        expect(trainee).to_have_url(re.compile("/login$"))
        sign_in_form(trainee, web.url, name, password)  # the old password no longer works
        expect(trainee.locator("#problem")).to_contain_text("Incorrect user name or password")
        sign_in_form(trainee, web.url, name, one_time)
        change_password(trainee, one_time, "a new kettle song")
        trainee.locator("#cs-header").get_by_text(f"Signed in as {name}").wait_for(
            timeout=60_000)
        # disable: the open page stops working, signing in says why
        choose(page, "ad-who", name)
        page.locator("#ad-disable").click()
        expect(result).to_contain_text("is disabled", timeout=30_000)
        search.fill(name)
        expect(page.locator("#ad-users")).to_contain_text("disabled")
        trainee.reload()
        expect(trainee).to_have_url(re.compile("/login$"))
        sign_in_form(trainee, web.url, name, "a new kettle song")
        expect(trainee.locator("#problem")).to_contain_text("disabled")
        shot(trainee, "accounts-3-disabled")
        # delete, keeping the sessions under a pseudonym; the name re-added starts empty
        choose(page, "ad-who", name)
        page.locator("#ad-delete-box").click()
        page.locator("#ad-delete").click()
        expect(result).to_contain_text("Type the user name again", timeout=30_000)
        page.locator("#ad-confirm textarea").fill(name)
        page.locator("#ad-delete").click()
        expect(result).to_contain_text("kept as", timeout=30_000)
        shot(page, "accounts-4-deleted")
        kept = web.ctx.store.get_session(sid)
        assert kept.trainee.startswith("deleted-")
        assert name not in [u.name for u in web.ctx.store.list_users()]
    finally:
        trainee.close()


def test_two_tabs_of_one_session_do_not_drift_apart(page: Page, web: Any,
                                                    browser: Browser) -> None:
    name, password = web.user("tab_tom", "trainee", cohort="spring")
    login(page, web.url, name, password)
    page.locator("#start").click()
    bot = page.locator("#chat [data-testid='bot']")
    expect(bot).to_have_count(1, timeout=30_000)
    sid = web.ctx.store.list_sessions(trainee=name)[0].session_id
    other = page.context.new_page()  # a second tab, same sign-in
    try:
        other.goto(web.url + "/")
        other.locator("#cs-header").get_by_text(f"Signed in as {name}").wait_for(timeout=60_000)
        other.locator("#resume-box").click()
        other.locator("#resume-pick input").fill(sid)
        other.locator("#resume-pick input").press("Enter")
        other.locator("#resume").click()
        expect(other.locator("#chat [data-testid='bot']")).to_have_count(1, timeout=30_000)
        page.locator("#say textarea").fill("What brings you in today?")
        page.locator("#send").click()
        expect(bot).to_have_count(2, timeout=30_000)
        # the first tab's send has finished (its coach card is drawn last), so the second tab
        # meets a finished turn it has not seen, not a reply still being made
        expect(page.locator("#coach .cs-coach-turn")).to_have_count(1, timeout=30_000)
        # the second tab has not seen that turn: its send is refused, its words kept, and it is
        # shown the conversation as it stands
        other.locator("#say textarea").fill("Tell me about your week.")
        other.locator("#send").click()
        expect(other.get_by_text("changed in another window").first).to_be_visible(
            timeout=30_000)
        expect(other.locator("#chat [data-testid='user']")).to_have_count(1)
        expect(other.locator("#say textarea")).to_have_value("Tell me about your week.")
        shot(other, "accounts-5-second-tab-refused")
        other.locator("#send").click()  # now it has seen the turn: accepted
        expect(other.locator("#chat [data-testid='bot']")).to_have_count(3, timeout=30_000)
        # the third bubble shows as soon as the turn is stored; the reply is stored when the
        # send has finished (its coach card is drawn last)
        expect(other.locator("#coach .cs-coach-turn")).to_have_count(2, timeout=30_000)
        speakers = [t.speaker for t in web.ctx.store.current_turns(sid)]
        assert speakers == ["client", "counselor", "client", "counselor", "client"]
    finally:
        other.close()
