"""The HTML report in headless Debian Chromium: charts render, nothing is fetched, screenshot kept.

Run with ``pytest -m browser``; ``make test`` installs /usr/bin/chromium first. The screenshot goes
to test-artifacts/report.png (git-ignored) for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from content_fixtures import code, fill_session, new_session
from playwright.sync_api import Page

from simulator.reports.render import render_report
from simulator.store import open_store

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.browser
def test_html_report_renders_charts_offline(tmp_path: Path, page: Page) -> None:
    store = open_store(tmp_path / "db.sqlite")
    store.add_user("alex", "trainee", cohort="2026-spring")
    sid = new_session(store)
    fill_session(store, sid)
    t = store.add_turn(sid, "counselor", "<script>alert(1)</script><img src=http://example.com/x>")
    store.add_codes(t.id, "test-miti", code("OQ"), coder="offline")
    store.set_self_rating(sid, {"partnership": 4, "empathy": 4, "comment": "I listened well."})
    sr = [e for e in store.effective_codes(sid) if e.values["behaviour"] == "SR"][1]
    store.add_review(sid, reviewer="dr_lee", turn_id=sr.turn.id, item_id="behaviour", value="CR",
                     comment="This adds meaning: a complex reflection.")
    store.end_session(sid)
    page_file = tmp_path / "report.html"
    page_file.write_text(render_report(store, sid, "html", feedback_dir=ROOT / "feedback"),
                         encoding="utf-8")
    url = page_file.as_uri()

    requests: list[str] = []
    dialogs: list[str] = []
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1100, "height": 900})
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    svgs = page.locator("svg.chart")
    assert svgs.count() == 3  # metrics, codes over the session, client state
    for i in range(svgs.count()):
        box = svgs.nth(i).bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 80
        assert svgs.nth(i).locator("path").count() > 5
    text = page.inner_text("body")
    assert "<script>alert(1)</script>" in text  # shown as text, not run
    assert page.locator("main script").count() == 0 and page.locator("img").count() == 0
    assert "Complex reflection" in text and "Reflection-to-question ratio" in text
    page.screenshot(path=str(artifacts / "report.png"), full_page=True)
    from web_harness import axe_problems

    assert axe_problems(page) == []  # the report document itself (issue 16 item 7)
    assert requests == [url], requests
    assert dialogs == []
