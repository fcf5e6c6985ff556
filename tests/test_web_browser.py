"""The web app in real headless Chromium (Debian's package) through pytest-playwright.

The app runs in-process on 127.0.0.1 (``conftest.web``): offline client and grader, a temporary
database and content folders. Every step saves a screenshot to test-artifacts/web-*.png for a
person to look at (1366x768, a common laptop screen).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from web_harness import PERSONA_ID, login, shot

pytestmark = pytest.mark.browser

TURNS = [
    "Hi Dana, thanks for coming in. What brings you here today?",
    "So after a night shift the wine is what lets your mind finally switch off.",
    "What worries you most when you think about your drinking?",
]


def choose(page: Page, elem_id: str, name: re.Pattern[str]) -> None:
    """Pick an option of a Gradio dropdown by its label."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=name).click()


def trainee_session(page: Page, web: Any, name: str, *, screenshots: bool) -> str:
    """Log in as a trainee, hold a three-turn coach-mode session, end it, see the report."""
    user, password = web.user(name, "trainee", cohort="spring")
    login(page, web.url, user, password)
    expect(page.locator("#persona-cards .cs-card")).to_have_count(1)
    expect(page.locator("#cs-header")).to_contain_text("OFFLINE")
    if screenshots:
        shot(page, "trainee-1-choose-client")
    page.locator("#start").click()
    bot = page.locator("#chat [data-testid='bot']")
    expect(bot).to_have_count(1, timeout=30_000)  # the client's opening line
    for n, said in enumerate(TURNS, start=1):
        page.locator("#say textarea").fill(said)
        page.locator("#send").click()
        expect(bot).to_have_count(n + 1, timeout=30_000)
        cards = page.locator("#coach .cs-coach-turn:not(.cs-pending)")
        expect(cards).to_have_count(n, timeout=30_000)
        # the newest card is first and is about the turn just sent, with codes and a rationale
        newest = cards.first
        expect(newest).to_contain_text(said[:30])
        expect(newest.locator(".cs-code").first).to_be_visible()
        if screenshots:
            shot(page, f"trainee-{n + 1}-turn-{n}-coach-feedback")
    expect(page.locator("#chat [data-testid='user']")).to_have_count(3)
    session_id = web.ctx.store.list_sessions(trainee=user)[0].session_id
    page.locator("#end").click()
    expect(page.locator("#self-rating")).to_be_visible(timeout=30_000)
    if screenshots:
        shot(page, "trainee-5-self-rating")
    page.locator("#self-save").click()
    frame = page.frame_locator("#report iframe")
    expect(frame.locator("body")).to_contain_text(TURNS[2][:30], timeout=30_000)
    expect(page.locator("#report iframe")).to_have_attribute("sandbox", "")
    if screenshots:
        shot(page, "trainee-6-report")
    return session_id


def test_trainee_holds_a_three_turn_coach_session_and_reads_the_report(page: Page,
                                                                        web: Any) -> None:
    session_id = trainee_session(page, web, "tara", screenshots=True)
    session = web.ctx.store.get_session(session_id)
    assert session.status == "ended"
    assert session.mode == "coach"
    assert session.persona_id == PERSONA_ID
    trainee_turns = [t for t in web.ctx.store.current_turns(session_id)
                     if t.speaker == "counselor"]
    assert [t.text for t in trainee_turns] == TURNS
    assert session.self_rating  # the self-rating was stored before the report
    assert all(len(web.ctx.store.codes(t.id)) >= 1 for t in trainee_turns)


def test_second_trainee_cannot_see_or_open_first_trainees_session(page: Page, web: Any) -> None:
    store = web.ctx.store
    owner, _ = web.user("olive", "trainee", cohort="spring")
    sid = web.ctx.practice.start(owner, PERSONA_ID, mode="coach")  # unfinished: resumable
    user, password = web.user("bruno", "trainee", cohort="spring")
    login(page, web.url, user, password)
    # not offered for resuming, not in My progress
    page.locator("#resume-box").click()
    options = page.locator("#resume-pick")
    expect(options).not_to_contain_text("olive")
    page.get_by_role("tab", name="My progress").click()
    expect(page.locator("#pg-table")).not_to_contain_text(sid[:8])
    page.get_by_role("tab", name="Practice").click()
    # typing the other trainee's session id into Resume is refused with a plain message
    page.locator("#resume-pick input").fill(sid)
    page.locator("#resume-pick input").press("Enter")
    page.locator("#resume").click()
    expect(page.get_by_text("Not found, or you do not have access to it.").first).to_be_visible(
        timeout=30_000)
    expect(page.locator("#practice-session")).to_be_hidden()
    shot(page, "isolation-1-resume-refused")
    assert store.get_session(sid).trainee == owner
    assert store.current_turns(sid)[-1].speaker == "client"  # nothing was added to it


def test_supervisor_corrects_a_code_and_the_report_changes(page: Page, web: Any,
                                                          browser: Any) -> None:
    trainee_page = browser.new_page(viewport={"width": 1366, "height": 768})
    try:
        session_id = trainee_session(trainee_page, web, "tess", screenshots=False)
    finally:
        trainee_page.close()
    user, password = web.user("dr_sue", "supervisor", cohort="spring")
    web.user("xavier", "trainee", cohort="autumn")
    other = web.ctx.practice.start("xavier", PERSONA_ID)  # another cohort: never listed
    login(page, web.url, user, password)
    expect(page.get_by_role("tab", name="Review")).to_be_visible()
    expect(page.get_by_role("tab", name="Author")).to_have_count(0)
    table = page.locator("#rv-table")
    expect(table).to_contain_text("tess")
    expect(table).not_to_contain_text("xavier")
    assert other not in (table.inner_text() or "")
    shot(page, "supervisor-1-cohort-sessions")
    choose(page, "rv-pick", re.compile(r"^tess "))
    transcript = page.locator("#rv-transcript")
    expect(transcript).to_contain_text(TURNS[1][:30], timeout=30_000)
    frame = page.frame_locator("#rv-report iframe")
    expect(frame.locator("body")).to_contain_text(TURNS[1][:30], timeout=30_000)
    expect(frame.locator("body")).not_to_contain_text("Supervisor comments and corrections")
    before = page.locator("#rv-report iframe").get_attribute("srcdoc") or ""
    shot(page, "supervisor-2-transcript")
    # correct turn 2 (a simple reflection by the coder) to a complex reflection
    choose(page, "rv-turn", re.compile(r"^Turn 2:"))
    choose(page, "rv-value", re.compile(r"^CR "))
    page.locator("#rv-comment textarea").fill("This adds the meaning underneath: complex.")
    page.locator("#rv-save").click()
    expect(page.locator("#rv-saved")).to_contain_text("Saved", timeout=30_000)
    expect(frame.locator("body")).to_contain_text("Supervisor comments and corrections",
                                                  timeout=30_000)
    expect(frame.locator("body")).to_contain_text("This adds the meaning underneath")
    after = page.locator("#rv-report iframe").get_attribute("srcdoc") or ""
    assert after != before
    expect(transcript.locator(".cs-corrected").first).to_be_visible()
    page.locator("#rv-report iframe").scroll_into_view_if_needed()
    shot(page, "supervisor-3-corrected-report")
    effective = web.ctx.store.effective_codes(session_id)
    assert effective[1].values["behaviour"] == "CR"
    assert effective[1].sources["behaviour"] == "supervisor"
    assert effective[1].machine["behaviour"] != "CR"  # the machine's code is kept beside it


def test_educator_breaks_yaml_sees_line_number_fixes_and_previews(page: Page, web: Any) -> None:
    user, password = web.user("ed", "educator")
    login(page, web.url, user, password)
    expect(page.get_by_role("tab", name="Author")).to_be_visible()
    expect(page.get_by_role("tab", name="Review")).to_have_count(0)
    editor = page.locator("#author-editor .cm-content")
    expect(editor).to_contain_text("id: dana-alcohol", timeout=30_000)
    expect(page.locator("#author-status")).to_contain_text("Valid")
    shot(page, "educator-1-editor")
    # break it: difficulty 9 is out of range (line 6 of the file)
    line = page.locator("#author-editor .cm-line", has_text="difficulty: 2")
    line.click()
    page.keyboard.press("End")
    page.keyboard.press("Backspace")
    page.keyboard.type("9")
    status = page.locator("#author-status")
    expect(status).to_contain_text("line 6", timeout=30_000)
    expect(status).to_contain_text("difficulty: Input should be less than or equal to 5")
    shot(page, "educator-2-error-with-line")
    # fix it, then preview the persona as edited
    line = page.locator("#author-editor .cm-line", has_text="difficulty: 9")
    line.click()
    page.keyboard.press("End")
    page.keyboard.press("Backspace")
    page.keyboard.type("3")
    expect(status).to_contain_text("Valid", timeout=30_000)
    page.locator("#author-preview-text textarea").fill("It sounds like nights are hard on you.")
    page.locator("#author-preview-send").click()
    preview = page.locator("#author-preview [data-testid='bot']")
    expect(preview).to_have_count(2, timeout=30_000)
    expect(preview.first).to_contain_text("My GP said")
    shot(page, "educator-3-fixed-and-preview")
