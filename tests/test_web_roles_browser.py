"""Each role's way through the web app at 1280x800 and 768x1024, with the shipped library.

A second app (module scope) serves the nine shipped personas and all three rubrics, so the start
screen has as many cards as a class sees. Screenshots go to test-artifacts/web-roles-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from web_harness import ROOT, login, shot, start_web

pytestmark = pytest.mark.browser

SIZES = [pytest.param((1280, 800), id="1280"), pytest.param((768, 1024), id="768")]
MAI = "mai-bereavement"


@pytest.fixture(scope="module")
def lib_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = start_web(tmp_path_factory.mktemp("roles"), ROOT / "personas",
                       ("miti-4.2.1.yaml", "helping-skills.yaml", "cbt-ctrs.yaml"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sized(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    width, height = request.param
    page = browser.new_page(viewport={"width": width, "height": height})
    try:
        yield page
    finally:
        page.close()


def signed_in(page: Page, web: Any, name: str, role: str = "trainee",
              cohort: str | None = "spring") -> str:
    user, password = web.user(name, role, cohort=cohort)
    login(page, web.url, user, password)
    return user


def width_of(page: Page) -> int:
    return int(page.viewport_size["width"]) if page.viewport_size else 0


@pytest.mark.parametrize("sized", SIZES, indirect=True)
def test_start_screen_selects_on_click_shows_rubric_and_keeps_a_draft(sized: Page,
                                                                     lib_web: Any) -> None:
    page, w = sized, width_of(sized)
    user = signed_in(page, lib_web, f"stella{w}")
    expect(page.locator("#resume-box")).to_be_hidden()  # nothing to resume yet
    expect(page.locator("#persona-cards .cs-card")).to_have_count(9)
    # the last card, far down the page: a click selects it and Start stays within reach
    last = page.locator("#persona-cards .cs-card").last
    last_title = last.locator("h3").inner_text().replace("✓ Selected", "").strip()
    last.click()
    expect(page.locator("#persona-cards .cs-selected")).to_have_count(1)
    expect(page.locator("#persona-cards .cs-selected h3")).to_contain_text(last_title)
    expect(page.locator("#persona-pick input")).to_have_value(last_title)
    expect(page.locator("#start")).to_be_in_viewport()
    # keyboard: Enter on a focused card selects it too
    page.locator(f"#persona-cards .cs-card[data-persona='{MAI}']").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#persona-cards .cs-selected")).to_have_attribute("data-persona", MAI)
    # the rubric is shown beside Start, the settings' default first; another can be chosen
    rubric = page.locator("#rubric-pick input")
    expect(rubric).to_have_value("MITI 4.2.1 (Motivational Interviewing Treatment Integrity)")
    shot(page, f"roles-{w}-trainee-1-start")
    rubric.click()
    page.get_by_role("option", name="Helping skills").click()
    page.locator("#start").click()
    expect(page.locator("#chat [data-testid='bot']")).to_have_count(1, timeout=30_000)
    expect(page.locator("#session-brief")).to_contain_text("Scored with Helping skills")
    session = lib_web.ctx.store.list_sessions(trainee=user)[0]
    assert (session.persona_id, session.rubric_id) == (MAI, "helping-skills")
    # typed but not sent, then a reload: the unfinished session comes first, the text comes back
    draft = "It has been a hard five months"
    page.locator("#say textarea").fill(draft)
    page.wait_for_timeout(1000)
    page.reload()
    page.locator("#cs-header").get_by_text(f"Signed in as {user}").wait_for(timeout=60_000)
    box = page.locator("#resume-box")
    expect(box).to_contain_text("Unfinished sessions (1)")
    expect(page.locator("#resume")).to_be_in_viewport()
    resume_y = box.bounding_box()["y"]  # type: ignore[index]
    cards_y = page.locator("#persona-cards").bounding_box()["y"]  # type: ignore[index]
    assert resume_y < cards_y
    shot(page, f"roles-{w}-trainee-2-resume-first")
    page.locator("#resume").click()
    expect(page.locator("#say textarea")).to_have_value(draft, timeout=10_000)
    shot(page, f"roles-{w}-trainee-3-draft-kept")
