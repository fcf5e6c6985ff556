"""Each role's way through the web app at 1280x800, with the shipped library; each flow is also
checked at 768x1024 where width matters (``at_tablet``: the same page resized, not the whole flow
again), the start screen at 768 throughout (its cards stack there), and every page at four widths
in the layout test.

A second app (module scope) serves the nine shipped personas and all three rubrics, so the start
screen has as many cards as a class sees. Screenshots go to test-artifacts/web-roles-*.png.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from web_harness import ROOT, login, shot, start_web

pytestmark = pytest.mark.browser

LAPTOP = [pytest.param((1280, 800), id="1280")]
TABLET = [pytest.param((768, 1024), id="768")]
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


@contextlib.contextmanager
def at_tablet(page: Page) -> Iterator[None]:
    """The page as it is, resized to an upright tablet (768x1024) for the checks in the block,
    then back: the width-dependent part of a flow, without holding the whole flow twice."""
    before = page.viewport_size or {"width": 1280, "height": 800}
    page.set_viewport_size({"width": 768, "height": 1024})
    page.wait_for_timeout(150)  # the layout settles (Gradio re-measures on resize)
    try:
        yield
    finally:
        page.set_viewport_size(before)


@pytest.mark.parametrize("sized", TABLET, indirect=True)
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
    # the rubric is shown beside Start, the client's default first; another it offers can be
    # chosen (Mai: helping skills by default, MITI offered)
    rubric = page.locator("#rubric-pick input")
    expect(rubric).to_have_value("Helping skills (Hill's exploration, insight and action stages)")
    shot(page, f"roles-{w}-trainee-1-start")
    rubric.click()
    page.get_by_role("option", name="MITI 4.2.1").click()
    page.locator("#start").click()
    expect(page.locator("#chat [data-testid='bot']")).to_have_count(1, timeout=30_000)
    expect(page.locator("#session-brief")).to_contain_text("Scored with MITI 4.2.1")
    session = lib_web.ctx.store.list_sessions(trainee=user)[0]
    assert (session.persona_id, session.rubric_id) == (MAI, "miti-4.2.1")
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


def uncovered(page: Page, selector: str) -> bool:
    """True when a click at the element's centre would reach it (nothing lies on top of it)."""
    return bool(page.evaluate(
        """(sel) => { const el = document.querySelector(sel); if (!el) return false;
             const r = el.getBoundingClientRect();
             const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
             return !!hit && (hit === el || el.contains(hit)); }""", selector))


@pytest.mark.parametrize("sized", LAPTOP, indirect=True)
def test_refusals_are_notices_that_keep_the_conversation(sized: Page, lib_web: Any) -> None:
    page, w = sized, width_of(sized)
    user = signed_in(page, lib_web, f"ezra{w}")
    page.locator(f"#persona-cards .cs-card[data-persona='{MAI}']").click()
    page.locator("#start").click()
    bot = page.locator("#chat [data-testid='bot']")
    expect(bot).to_have_count(1, timeout=30_000)
    opening = bot.first.inner_text()
    page.locator("#say textarea").fill("What has it been like at home since March?")
    page.locator("#send").click()
    expect(bot).to_have_count(2, timeout=30_000)
    # the send has finished when its coach card is up (a click on Send while the reply still
    # streams is not taken: one turn at a time)
    coached = page.locator("#coach .cs-coach-turn")
    expect(coached).to_have_count(1, timeout=30_000)
    notice = page.locator("#say-notice .cs-notice")
    # an empty turn: a notice under the box; the conversation and the box are untouched
    page.locator("#say textarea").fill("   ")
    page.locator("#send").click()
    expect(notice).to_contain_text("Your turn is empty", timeout=30_000)
    expect(bot).to_have_count(2)
    expect(bot.first).to_contain_text(opening)
    expect(page.locator("#chat .error, #say .error")).to_have_count(0)
    shot(page, f"roles-{w}-trainee-4-empty-turn-notice")
    # an over-long turn: the same, and the text stays typed so it can be shortened
    long_turn = "You said it has been hard. " * 160
    page.locator("#say textarea").fill(long_turn)
    page.locator("#send").click()
    expect(notice).to_contain_text("the limit is 4,000", timeout=30_000)
    expect(bot).to_have_count(2)
    expect(page.locator("#say textarea")).to_have_value(long_turn)
    expect(page.locator("#chat .error, #say .error")).to_have_count(0)
    shot(page, f"roles-{w}-trainee-5-long-turn-notice")
    # a turn that goes through clears the notice
    page.locator("#say textarea").fill("It sounds like the evenings are the hardest.")
    page.locator("#send").click()
    expect(bot).to_have_count(3, timeout=30_000)
    expect(coached).to_have_count(2, timeout=30_000)
    expect(notice).to_have_count(0)
    # trying a turn again says so under the box; header and Sign out stay reachable
    page.locator("#rewind").click()
    expect(notice).to_contain_text("back in the box", timeout=10_000)
    expect(bot).to_have_count(2)
    page.evaluate("window.scrollTo(0, 0)")
    assert uncovered(page, "#cs-header a.cs-signout[href='/logout']")
    shot(page, f"roles-{w}-trainee-6-rewind-notice")
    with at_tablet(page):
        expect(notice).to_contain_text("back in the box")
        expect(bot).to_have_count(2)
        page.evaluate("window.scrollTo(0, 0)")
        assert uncovered(page, "#cs-header a.cs-signout[href='/logout']")
        page.locator("#say textarea").scroll_into_view_if_needed()
        expect(notice).to_be_in_viewport()
        shot(page, "roles-768-trainee-6-rewind-notice")
    stored = [t.text for t in lib_web.ctx.store.current_turns(
        lib_web.ctx.store.list_sessions(trainee=user)[0].session_id) if t.speaker == "counselor"]
    assert stored == ["What has it been like at home since March?"]  # refusals stored nothing
    # issue 15: chat text is shown literally; Markdown or HTML images fetch nothing
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if "127.0.0.2" in r.url else None)
    odd = ("See ![x](http://127.0.0.2:9/md.png) and <img src=http://127.0.0.2:9/raw.png> "
           "**so** 3 < 4 & <b>done</b>")
    page.locator("#say textarea").fill(odd)
    page.locator("#send").click()
    expect(page.locator("#chat [data-testid='user']").last).to_have_text(odd, timeout=30_000)
    expect(page.locator("#chat img")).to_have_count(0)
    expect(page.locator("#chat strong, #chat b")).to_have_count(0)
    expect(coached).to_have_count(2, timeout=30_000)
    assert fetched == []


def ended_session(web: Any, user: str, persona: str, said: list[str],
                  rating: list[int]) -> str:
    """A session held and ended through the service, rated by its trainee (as the web does)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    practice = web.ctx.practice
    sid = str(practice.start(user, persona, mode="coach"))

    async def hold() -> None:
        for text in said:
            async for _ in practice.turn(sid, user, text):
                pass

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's loop
        pool.submit(asyncio.run, hold()).result()
    practice.end(sid, user)
    practice.rate_self(sid, web.ctx.store.get_user(user), rating)
    return sid


def fits(page: Page, selector: str) -> bool:
    """Nothing in the element is cut off or pushed past its box (no word broken across lines is
    checked separately, per header cell)."""
    return bool(page.evaluate(
        """(sel) => [...document.querySelectorAll(sel)].every(
             el => el.scrollWidth <= el.clientWidth + 1)""", selector))


@pytest.mark.parametrize("sized", LAPTOP, indirect=True)
def test_my_progress_gap_matches_the_report_and_reads_at_each_width(sized: Page,
                                                                    lib_web: Any) -> None:
    page, w = sized, width_of(sized)
    user, password = lib_web.user(f"paz{w}", "trainee", cohort="spring")
    said = ["What brings you here today?", "So the evenings are the hardest part for you.",
            "You want to sleep again, and you are not sure yet what would help."]
    sids = [ended_session(lib_web, user, MAI, said[:n], [3, 4, 3, 2]) for n in (2, 3)]
    login(page, lib_web.url, user, password)
    page.get_by_role("tab", name="My progress").click()
    gaps = page.locator("#pg-gaps table")
    expect(gaps).to_be_visible(timeout=90_000)
    expect(page.locator("#pg-table")).to_contain_text("Mai, 68", timeout=30_000)
    # every gap is "you minus the grader" exactly as the session's report prints the two
    report, _ = lib_web.ctx.report(sids[-1])
    rows = re.findall(r'<tr><td>([^<]+)</td><td class="num">([^<]+)</td>\s*'
                      r'<td class="num">([^<]+)</td>', report)
    assert rows, "the report has a self-rating table"
    for title, mine, grader in rows:
        cell = gaps.locator("tr", has_text=title.strip()).locator("td").last
        expect(cell).to_contain_text(f"{float(mine) - float(grader):+.1f}")
        expect(cell).to_contain_text(f"{mine} vs {grader}")
    expect(page.locator("#pg-table")).not_to_contain_text(MAI)
    expect(page.locator("#pg-pick input")).to_have_value(re.compile(r"^Mai, 68"))

    def reads_well(w: int) -> None:
        # the sessions table: nothing cut off, no header broken inside a word, titles not ids
        assert fits(page, "#pg-table .cs-brief")
        assert fits(page, "#pg-table th")
        assert fits(page, "#pg-gaps th")
        # the chart is drawn near its own size (readable labels), and Sign out is within reach
        scale = page.evaluate("""() => { const svg = document.querySelector('#pg-metrics svg');
            return svg.getBoundingClientRect().width / svg.viewBox.baseVal.width; }""")
        assert scale >= 0.8, (w, scale)
        page.evaluate("window.scrollTo(0, 0)")
        expect(page.locator("#cs-header a.cs-signout[href='/logout']")).to_be_in_viewport()
        assert uncovered(page, "#cs-header a.cs-signout[href='/logout']")
        page.screenshot(path=str(shot(page, f"roles-{w}-trainee-7-progress")), full_page=True)

    reads_well(w)
    with at_tablet(page):
        reads_well(768)


def test_report_suggested_alternatives_quote_the_trainee_once(page: Page, lib_web: Any) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    user, password = lib_web.user("alba", "trainee", cohort="spring")
    advice = "You should cut down, it is bad for your liver."
    ended_session(lib_web, user, "tomasz-alcohol-precontemplation",
                  ["Why don't you just stop drinking?", advice], [3, 3, 3, 3])
    login(page, lib_web.url, user, password)
    page.get_by_role("tab", name="My progress").click()
    expect(page.locator("#pg-pick input")).to_have_value(re.compile(r"^Tomasz"),
                                                         timeout=90_000)
    page.locator("#pg-open").click()
    section = page.frame_locator("#pg-report iframe").locator(
        "section", has=page.frame_locator("#pg-report iframe").get_by_role(
            "heading", name="Suggested alternatives"))
    expect(section).to_contain_text(advice, timeout=30_000)
    assert section.inner_text().count(advice) == 1
    row = section.locator("tr", has_text=advice)
    expect(row.locator(".note")).to_contain_text("Persuade")  # the reason stays, unquoted
    section.scroll_into_view_if_needed()
    shot(page, "roles-1280-trainee-8-report-alternatives")


@pytest.mark.parametrize("sized", LAPTOP, indirect=True)
def test_supervisor_reviews_with_titles_one_numbering_and_the_machines_score(
        sized: Page, lib_web: Any) -> None:
    from simulator.service import reviews

    page, w = sized, width_of(sized)
    cohort = f"north{w}"
    trainee, _ = lib_web.user(f"vera{w}", "trainee", cohort=cohort)
    said = ["What brings you here today?", "So the evenings are the hardest part for you.",
            "What would you like from our time together?"]
    sid = ended_session(lib_web, trainee, MAI, said, [3, 3, 3, 3])
    sup = signed_in(page, lib_web, f"sam{w}", "supervisor", cohort=cohort)
    expect(page.locator("#rv-table")).to_contain_text(trainee, timeout=30_000)
    # the client filter offers titles, not ids
    page.locator("#rv-persona input").click()
    expect(page.get_by_role("option", name=re.compile(r"^Mai, 68"))).to_be_visible()
    expect(page.get_by_role("option", name=MAI)).to_have_count(0)
    page.keyboard.press("Escape")
    # a search hit is a link to its turn
    page.locator("#rv-query textarea").fill("evenings")
    page.locator("#rv-go").click()
    hit = page.locator("#rv-hits .cs-hit", has_text=trainee)
    expect(hit).to_be_visible(timeout=30_000)
    expect(hit).to_contain_text("Mai, 68")
    hit.click()
    transcript = page.locator("#rv-transcript")
    expect(transcript).to_contain_text(said[1], timeout=30_000)
    expect(page.locator("#rv-turn input")).to_have_value(re.compile(r"^Turn 2: So the evenings"),
                                                         timeout=30_000)
    turn2 = lib_web.ctx.store.effective_codes(sid)[1].turn
    expect(page.locator(f"#rv-turn-{turn2.id}")).to_be_in_viewport(timeout=10_000)
    # one numbering: the transcript says "Turn N" as the correction list and the report do
    labels = transcript.locator(".cs-trainee .cs-who").all_inner_texts()
    assert labels == ["Trainee · Turn 1", "Trainee · Turn 2", "Trainee · Turn 3"], labels
    expect(transcript).not_to_contain_text("#")
    shot(page, f"roles-{w}-supervisor-1-hit-opened")
    with at_tablet(page):
        page.locator(f"#rv-turn-{turn2.id}").scroll_into_view_if_needed()
        expect(page.locator(f"#rv-turn-{turn2.id}")).to_be_in_viewport()
        assert fits(page, "#rv-transcript .cs-who")
        page.locator("#rv-svalue input").scroll_into_view_if_needed()
        assert uncovered(page, "#rv-svalue input")
        shot(page, "roles-768-supervisor-1-hit-opened")
    # the score box starts at the machine's value, within the item's scale, and says so
    user = lib_web.ctx.store.get_user(sup)
    first = reviews.session_item_scores(lib_web.ctx.store, user, sid)[0]
    box = page.locator("#rv-svalue input")
    assert first.score is not None
    shown = f"{first.score:.1f}".rstrip("0").rstrip(".")  # one decimal, as the report
    expect(box).to_have_value(shown)
    expect(box).to_have_attribute("max", str(first.max))
    expect(page.locator("#rv-svalue")).to_contain_text(f"machine's value {shown}")
    box.fill("4")
    page.locator("#rv-ssave").click()
    expect(page.locator("#rv-saved")).to_contain_text("Saved", timeout=30_000)
    expect(page.locator("#rv-svalue")).to_contain_text("corrected to 4", timeout=30_000)
    expect(box).to_have_value("4")
    page.locator("#rv-svalue").scroll_into_view_if_needed()
    shot(page, f"roles-{w}-supervisor-2-score-corrected")
    # agreement says how many turns it rests on, and that few is few
    page.get_by_text("Agreement between supervisors and the machine").click()
    page.locator("#rv-agree-go").click()
    agree = page.locator("#rv-agree")
    expect(agree).to_contain_text("3 trainee turns in 1 reviewed session.", timeout=30_000)
    expect(agree).to_contain_text("Small sample")
    expect(agree).to_contain_text("(n=3)")
    agree.scroll_into_view_if_needed()
    shot(page, f"roles-{w}-supervisor-3-agreement")


@pytest.mark.parametrize("sized", LAPTOP, indirect=True)
def test_educator_no_empty_versions_plain_yaml_errors_and_permissions_kept(
        sized: Page, lib_web: Any) -> None:
    import stat

    page, w = sized, width_of(sized)
    path = lib_web.ctx.settings.personas / "harjit-diabetes-adherence.yaml"
    path.chmod(0o640)
    signed_in(page, lib_web, f"edna{w}", "educator", cohort=None)
    page.locator("#author-file input").click()
    page.get_by_role("option", name="harjit-diabetes-adherence.yaml").click()
    editor = page.locator("#author-editor .cm-content")
    expect(editor).to_contain_text("id: harjit-diabetes-adherence", timeout=30_000)
    status = page.locator("#author-status")
    expect(status).to_contain_text("Valid", timeout=30_000)
    before = path.read_text(encoding="utf-8")
    archived = sorted((path.parent / ".versions").glob("harjit-diabetes-adherence.*"))
    # saving what is already saved makes no new version
    page.locator("#author-save").click()
    saved = page.locator("#author-save-status")
    expect(saved).to_contain_text("Nothing changed", timeout=30_000)
    assert path.read_text(encoding="utf-8") == before
    assert sorted((path.parent / ".versions").glob("harjit-diabetes-adherence.*")) == archived
    # a key indented too far is reported at its own line, in plain words
    line_no = next(n for n, row in enumerate(before.splitlines(), start=1)
                   if row.startswith("  setting:"))
    # at the very start of the (wrapped) line: the cursor lands before its indentation
    page.locator("#author-editor .cm-line", has_text="setting:").first.click(
        position={"x": 1, "y": 4})
    page.keyboard.type("  ")
    expect(status).to_contain_text(f"line {line_no},", timeout=30_000)
    expect(status).to_contain_text("'setting' is indented 4 spaces")
    expect(status).not_to_contain_text("required key is missing")
    shot(page, f"roles-{w}-educator-1-over-indented")
    with at_tablet(page):  # the error is read beside the editor on a tablet too
        status.scroll_into_view_if_needed()
        expect(status).to_be_in_viewport()
        expect(status).to_contain_text("'setting' is indented 4 spaces")
        page.locator("#author-save").scroll_into_view_if_needed()
        assert uncovered(page, "#author-save")
        shot(page, "roles-768-educator-1-over-indented")
    page.keyboard.press("Backspace")  # the editor deletes one indentation unit (2 spaces)
    expect(status).to_contain_text("Valid", timeout=30_000)
    # a parser error in words an author can act on: a ':' inside a value
    page.locator("#author-editor .cm-line", has_text="title:").first.click()
    page.keyboard.press("End")
    page.keyboard.type(": draft")
    expect(status).to_contain_text("a ':' inside a value: put the whole value in quotes",
                                   timeout=30_000)
    expect(status).not_to_contain_text("mapping values")
    for _ in range(len(": draft")):
        page.keyboard.press("Backspace")
    expect(status).to_contain_text("Valid", timeout=30_000)
    # a real change saves as a new version and keeps the file's permissions
    target = "4"
    line = page.locator("#author-editor .cm-line", has_text="difficulty:")
    line.click()
    page.keyboard.press("End")
    page.keyboard.press("Backspace")
    page.keyboard.type(target)
    expect(status).to_contain_text("Valid", timeout=30_000)
    page.locator("#author-save").click()
    expect(saved).to_contain_text("Saved", timeout=30_000)
    after = path.read_text(encoding="utf-8")
    assert f"difficulty: {target}" in after
    assert [r for r in after.splitlines() if "setting:" in r] == \
        [r for r in before.splitlines() if "setting:" in r]  # only what was meant changed
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    shot(page, f"roles-{w}-educator-2-saved")


WIDTHS = [(1280, 800), (1024, 768), (768, 1024), (390, 844)]
"""A laptop, a small laptop or a tablet on its side, a tablet upright, a phone."""

LAYOUT_JS = r"""() => {
  const out = [];
  const vw = document.documentElement.clientWidth;
  const measure = document.createElement('canvas').getContext('2d');
  const shown = (el) => !!el.offsetParent && el.getClientRects().length > 0;
  const scroller = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll') return p;
    }
    return null;
  };
  if (document.documentElement.scrollWidth > vw + 1)
    out.push(`the page scrolls sideways (${document.documentElement.scrollWidth} > ${vw})`);
  for (const t of document.querySelectorAll('table')) {
    if (!shown(t)) continue;
    const where = t.closest('[id]')?.id || 'table';
    const box = scroller(t);
    const right = box ? box.getBoundingClientRect().right : t.getBoundingClientRect().right;
    if (right > vw + 1) out.push(`${where}: table past the right edge (${right} > ${vw})`);
    if (!box && t.getBoundingClientRect().width > t.parentElement.getBoundingClientRect().width + 1)
      out.push(`${where}: table wider than its box, cut off`);
    for (const c of t.querySelectorAll('th, td')) {
      // (Gradio's data frames keep a hidden copy of the table to measure: not shown, no text)
      if (!shown(c) || getComputedStyle(c).visibility === 'hidden' || !c.innerText.trim()) continue;
      if (c.scrollWidth > c.clientWidth + 1 && getComputedStyle(c).overflowX !== 'auto') {
        out.push(`${where}: a cell is cut ("${c.innerText.slice(0, 40)}")`); break;
      }
      // no word broken across lines: the widest word fits the cell's content box
      const style = getComputedStyle(c);
      measure.font = style.font;
      const room = c.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      const words = c.innerText.split(/[\s\/-]+/);  // where a browser may break a line
      const widest = Math.max(0, ...words.map((w) => measure.measureText(w).width));
      if (widest > room + 1) {
        out.push(`${where}: a word is broken in "${c.innerText.slice(0, 40)}"`); break;
      }
    }
  }
  for (const svg of document.querySelectorAll('#pg-metrics svg')) {
    if (!shown(svg)) continue;
    // matplotlib draws its labels as paths: readable when drawn near the size they were made
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    if (scale < 0.8) out.push(`chart drawn at ${scale.toFixed(2)} of its size`);
    const box = scroller(svg) || svg;
    if (box.getBoundingClientRect().right > vw + 1) out.push('chart past the right edge');
  }
  return out;
}"""


def layout_problems(page: Page) -> list[str]:
    """What does not fit: sideways scrolling, tables past the edge or cut, unreadable charts,
    Sign out out of reach."""
    page.evaluate("window.scrollTo(0, 0)")
    problems: list[str] = page.evaluate(LAYOUT_JS)
    signout = page.locator("#cs-header a.cs-signout[href='/logout']")
    if signout.count() and not (signout.is_visible() and uncovered(
            page, "#cs-header a.cs-signout[href='/logout']")):
        problems.append("Sign out is not reachable")
    if signout.count():
        box = signout.bounding_box()
        if box is None or box["x"] + box["width"] > width_of(page) + 1:
            problems.append("Sign out lies beyond the viewport")
    return problems


def at_every_width(page: Page, name: str) -> list[str]:
    """Layout problems of the page as it is, at each width (screenshots for a person)."""
    found = []
    for w, h in WIDTHS:
        page.set_viewport_size({"width": w, "height": h})
        page.wait_for_timeout(150)  # let the layout settle
        found += [f"{name} at {w}: {p}" for p in layout_problems(page)]
        page.screenshot(path=str(shot(page, f"layout-{name}-{w}")), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    return found


def test_every_page_fits_at_1280_1024_768_and_a_phone_width(page: Page, lib_web: Any) -> None:
    """Issue 16 item 3: the header with Sign out within reach, tables not cut, charts readable,
    no sideways scrolling, on every page an admin sees (all tabs) and the sign-in page."""
    found: list[str] = []
    page.goto(lib_web.url + "/login")
    found += at_every_width(page, "sign-in")
    admin = "layla"
    said = ["What brings you here today?", "So the evenings are the hardest part for you."]
    user, password = lib_web.user(admin, "admin", cohort=None)
    trainee, _ = lib_web.user("lena", "trainee", cohort="spring")
    sid = ended_session(lib_web, trainee, MAI, said, [3, 4, 3, 2])
    ended_session(lib_web, user, MAI, said, [3, 4, 3, 2])
    login(page, lib_web.url, user, password)
    page.get_by_role("tab", name="Practice").click()
    expect(page.locator("#persona-cards .cs-card")).to_have_count(9)
    found += at_every_width(page, "practice-start")
    page.locator("#start").click()
    bot = page.locator("#chat [data-testid='bot']")
    expect(bot).to_have_count(1, timeout=30_000)
    page.locator("#say textarea").fill(said[0])
    page.locator("#send").click()
    expect(page.locator("#coach .cs-coach-turn:not(.cs-pending)")).to_have_count(1,
                                                                              timeout=30_000)
    found += at_every_width(page, "practice-session")
    page.locator("#end").click()
    page.locator("#self-skip").click()
    expect(page.frame_locator("#report iframe").locator("body")).to_contain_text(
        said[0], timeout=30_000)
    found += at_every_width(page, "report")
    page.get_by_role("tab", name="My progress").click()
    expect(page.locator("#pg-metrics svg").first).to_be_visible(timeout=60_000)
    found += at_every_width(page, "my-progress")
    page.get_by_role("tab", name="Review").click()
    expect(page.locator("#rv-table")).to_contain_text(trainee, timeout=30_000)
    page.locator("#rv-pick input").click()
    page.get_by_role("option", name=re.compile(f"^{trainee} ")).first.click()
    expect(page.locator("#rv-transcript")).to_contain_text(said[1], timeout=30_000)
    found += at_every_width(page, "review")
    page.get_by_role("tab", name="Author").click()
    expect(page.locator("#author-editor .cm-content")).to_contain_text("id:", timeout=30_000)
    found += at_every_width(page, "author")
    page.get_by_role("tab", name="Users").click()
    expect(page.locator("#ad-users")).to_contain_text(trainee, timeout=30_000)
    found += at_every_width(page, "users")
    assert not found, "\n".join(found)
    assert sid
