"""Web app pieces without a browser: safe file access, library reload, escaping, throttling."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from simulator.content.library import load_library
from simulator.content.loader import ContentErrors
from simulator.web import render
from simulator.web.content_edit import EditError, check_text, safe_path, save_new_version
from simulator.web.live_library import LiveLibrary

ROOT = Path(__file__).resolve().parent.parent
PERSONA = ROOT / "tests" / "web_content" / "personas" / "dana-alcohol.yaml"


@pytest.fixture
def content(tmp_path: Path) -> tuple[Path, Path]:
    personas, rubrics = tmp_path / "personas", tmp_path / "rubrics"
    personas.mkdir()
    rubrics.mkdir()
    shutil.copy(PERSONA, personas)
    shutil.copy(ROOT / "rubrics" / "miti-4.2.1.yaml", rubrics)
    return personas, rubrics


@pytest.mark.parametrize("name", ["../secrets.yaml", "/etc/passwd", "a/../../b.yaml", "x.txt",
                                  "..", "", "UPPER.yaml", "dana-alcohol.yaml/../x.yaml",
                                  "..yaml", ".hidden.yaml", "a..b.yaml"])
def test_file_names_from_the_browser_cannot_leave_the_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(EditError):
        safe_path(tmp_path, name)


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("id: x\n")
    folder = tmp_path / "personas"
    folder.mkdir()
    (folder / "link.yaml").symlink_to(outside)
    with pytest.raises(EditError):
        safe_path(folder, "link.yaml")


def test_editor_errors_carry_line_numbers(content: tuple[Path, Path]) -> None:
    personas, rubrics = content
    lib = load_library([personas], [rubrics])
    text = PERSONA.read_text().replace("difficulty: 2", "difficulty: 9")
    checked = check_text("persona", text, "personas/dana-alcohol.yaml", lib)
    assert not checked.ok
    assert [(e.line, e.key) for e in checked.errors] == [(6, "difficulty")]
    bad_code = PERSONA.read_text().replace("      rapport: 0.55",
                                           "      skills: {codes: [NOPE]}")
    checked = check_text("persona", bad_code, "p.yaml", lib)
    assert checked.errors and "NOPE" in checked.errors[0].message
    assert checked.errors[0].line > 30


def test_save_bumps_the_version_and_archives_the_old_file(content: tuple[Path, Path]) -> None:
    personas, rubrics = content
    lib = load_library([personas], [rubrics])
    text = PERSONA.read_text().replace("difficulty: 2", "difficulty: 4")
    path, version = save_new_version(personas, "persona", text, lib)
    assert (path.name, version) == ("dana-alcohol.yaml", 2)
    assert "version: 2" in path.read_text() and "# A small persona" in path.read_text()
    assert len(list((personas / ".versions").iterdir())) == 1
    assert load_library([personas], [rubrics]).persona("dana-alcohol").difficulty == 4
    with pytest.raises(ContentErrors):
        save_new_version(personas, "persona", text.replace("difficulty: 4", "difficulty: 0"),
                         lib)
    with pytest.raises(ContentErrors):  # an id that would escape is not a valid id at all
        save_new_version(personas, "persona", text.replace("id: dana-alcohol", "id: ../x"), lib)


def test_library_picks_up_files_changed_on_disk(content: tuple[Path, Path]) -> None:
    personas, rubrics = content
    live = LiveLibrary([personas], [rubrics], interval_s=0.0)
    assert live.get().persona("dana-alcohol").difficulty == 2
    f = personas / "dana-alcohol.yaml"
    f.write_text(f.read_text().replace("difficulty: 2", "difficulty: 5"))
    future = time.time() + 5
    import os

    os.utime(f, (future, future))
    assert live.get().persona("dana-alcohol").difficulty == 5
    f.write_text("id: [broken")
    os.utime(f, (future + 5, future + 5))
    lib = live.get()
    assert "dana-alcohol" not in lib.personas and lib.errors  # reported, app keeps running


def test_everything_rendered_is_escaped() -> None:
    evil = '<script>alert(1)</script>"\''
    frame = render.report_frame(f"<p>{evil}</p>")
    assert "<script>" not in frame and 'sandbox=""' in frame
    assert "&lt;script&gt;" in render.problem(evil)
    from simulator.content.loader import ContentError

    html = render.content_errors([ContentError("p.yaml", 3, 1, "k<b>", evil)])
    assert "<script>" not in html and "k&lt;b&gt;" in html


def test_coach_panel_warns_when_a_session_ends_without_the_risk_items(tmp_path: Path) -> None:
    """Issue 18: "Still to assess" while the session runs; a prominent warning once it ends."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from simulator.service.practice import Practice
    from simulator.settings import ROOT, Settings
    from simulator.web.context import WebContext
    from simulator.web.practice_ui import render_coach

    settings = Settings(db=tmp_path / "db.sqlite", personas=ROOT / "personas",
                        rubrics=ROOT / "rubrics")
    practice = Practice.from_settings(settings)
    try:
        practice.store.add_user("ana", "trainee")
        ctx = WebContext(practice=practice)
        sid = practice.start("ana", "farida-passive-si-risk")

        async def say(text: str) -> None:
            async for _ in practice.turn(sid, "ana", text):
                pass

        # in a thread of its own: the browser tests' Playwright keeps a loop running in this one
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, say("Do thoughts of suicide ever come?")).result()
        running = render_coach(ctx, sid)
        assert "Still to assess:" in running and "Plan, intent, previous attempts" in running
        assert "Ask directly about suicidal thoughts" not in running.split("Still to assess:")[1]
        assert "cs-risk-warning" not in running
        practice.end(sid, "ana")
        ended = render_coach(ctx, sid)
        assert 'class="cs-risk-warning" role="alert"' in ended and "Risk not assessed" in ended
    finally:
        practice.store.close()


def test_saving_unchanged_text_is_refused_and_permissions_are_kept(
        content: tuple[Path, Path]) -> None:
    personas, rubrics = content
    lib = load_library([personas], [rubrics])
    path = personas / "dana-alcohol.yaml"
    path.chmod(0o640)
    with pytest.raises(EditError, match="Nothing changed"):
        save_new_version(personas, "persona", path.read_text() + "\n\n", lib)
    assert not (personas / ".versions").exists()
    text = path.read_text().replace("difficulty: 2", "difficulty: 3")
    save_new_version(personas, "persona", text, lib)
    assert path.stat().st_mode & 0o777 == 0o640


def test_yaml_errors_are_in_plain_words_at_the_line_to_change(
        content: tuple[Path, Path]) -> None:
    personas, rubrics = content
    lib = load_library([personas], [rubrics])
    rows = PERSONA.read_text().splitlines()
    at = next(n for n, row in enumerate(rows) if row.startswith("  setting:"))
    over = [*rows[:at], "  " + rows[at], *rows[at + 1:]]  # indented under the block above
    [err] = check_text("persona", "\n".join(over), "p.yaml", lib).errors
    assert err.line == at + 1
    assert "'setting' is indented 4 spaces" in err.message
    colon = [row.replace("language:", "language", 1) for row in rows]
    [err] = check_text("persona", "\n".join(colon), "p.yaml", lib).errors
    assert rows[err.line - 1].startswith("language:")
    assert "<" not in err.message and "no ':' after its key" in err.message


def test_new_files_and_archived_versions_are_private_and_dotted_rubric_ids_save(
        content: tuple[Path, Path]) -> None:
    """Issue 15: content the app writes is 0600 (a file saved over keeps its owner's mode, see
    above); the MITI rubric, whose id has dots, is listed, opened and saved like any other."""
    from simulator.web.content_edit import list_files, read_file

    personas, rubrics = content
    lib = load_library([personas], [rubrics])
    new = (personas / "dana-alcohol.yaml").read_text().replace("id: dana-alcohol", "id: dana-b", 1)
    path, _ = save_new_version(personas, "persona", new, lib)
    assert path.stat().st_mode & 0o777 == 0o600
    assert "miti-4.2.1.yaml" in list_files(rubrics)
    text = read_file(rubrics, "miti-4.2.1.yaml")
    changed = text + "\n# edited\n"
    saved, version = save_new_version(rubrics, "rubric", changed, lib)
    assert saved.name == "miti-4.2.1.yaml" and version >= 2
    [archived] = (rubrics / ".versions").glob("miti-4.2.1.*.yaml")
    assert archived.stat().st_mode & 0o777 == 0o600
    assert (rubrics / ".versions").stat().st_mode & 0o777 == 0o700


def test_live_validation_refuses_a_bracket_bomb_at_once(content: tuple[Path, Path]) -> None:
    """Issue 15: thousands of nested brackets took the YAML parser 12 s; refused before parsing,
    at the line and column where the nesting gets too deep (quoted brackets do not count)."""
    personas, rubrics = content
    lib = load_library([personas], [rubrics])
    started = time.perf_counter()
    [err] = check_text("persona", "id: x\ntitle: " + "[" * 5000, "p.yaml", lib).errors
    assert time.perf_counter() - started < 0.5
    assert (err.line, err.column) == (2, 68) and "nested more than" in err.message
    quoted = PERSONA.read_text().replace("difficulty: 2",
                                         "difficulty: 2\nnote: '" + "[" * 100 + "'")
    found = check_text("persona", quoted, "p.yaml", lib).errors
    assert "nested" not in " ".join(e.message for e in found)


def test_my_progress_parses_each_rubric_version_once_and_draws_a_chart_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: My progress took ~9 s cold. Profiled: every session listed re-parsed its stored
    rubric YAML (0.3 s each for MITI), and the chart was redrawn on every visit (~1 s)."""
    from content_fixtures import fill_session, new_session

    from simulator.content import loader
    from simulator.grader.scores import session_rubric
    from simulator.reports.progress import build_progress
    from simulator.store import open_store
    from simulator.web import progress_ui

    store = open_store(tmp_path / "db.sqlite")
    store.add_user("alex", "trainee", cohort="c")
    sids = [new_session(store) for _ in range(3)]
    for sid in sids:
        fill_session(store, sid)
        store.end_session(sid)
    parsed: list[str] = []
    real = loader.load_model_text
    monkeypatch.setattr(loader, "load_model_text",
                        lambda *a, **k: parsed.append(a[2]) or real(*a, **k))
    rubrics = [session_rubric(store, store.get_session(sid)) for sid in sids * 2]
    assert len(parsed) <= 1 and all(r is rubrics[0] for r in rubrics)  # one stored version
    drawn: list[int] = []

    def draw(progress: object) -> str:
        drawn.append(1)
        return "<svg/>"

    progress = build_progress(store, trainee="alex")
    assert progress_ui._chart(progress, draw) == progress_ui._chart(
        build_progress(store, trainee="alex"), draw) == "<svg/>"
    assert drawn == [1]
    store.close()


def test_chat_shows_trainee_and_persona_text_literally_and_sign_in_says_what_this_is() -> None:
    """Issue 15: the chat renders no Markdown and no HTML from either side (a remote image in a
    turn or a persona line is text, never fetched). Issue 16: the sign-in page is branded."""
    from types import SimpleNamespace

    from simulator.web.practice_ui import chat_messages
    from simulator.web.sign_in_pages import sign_in_page

    said = SimpleNamespace(speaker="counselor", text="![x](http://e.test/a.png) <img src=x> & 3<4")
    reply = SimpleNamespace(speaker="client", text="<script>alert(1)</script>")
    out = chat_messages([said, reply])
    assert out[0]["content"] == "![x](http://e.test/a.png) &lt;img src=x&gt; &amp; 3&lt;4"
    assert out[1] == {"role": "assistant", "content": "&lt;script&gt;alert(1)&lt;/script&gt;"}
    page = sign_in_page()
    assert "CounselSim" in page and "simulated clients" in page and 'action="/login"' in page


def test_the_queue_does_not_summarise_its_events_after_each_one() -> None:
    """Gradio's queue analytics (a DataFrame of its last 10,000 events, after every event) took
    a tenth of the server's time under load; the app turns it down (web.app)."""
    import gradio as gr

    from simulator.web.app import quiet_queue_analytics

    with gr.Blocks() as demo:
        gr.Markdown("x")
    demo.queue()
    queue = demo._queue
    for name in ("ANALYTICS_MAX_EVENTS", "ANAYLTICS_CACHE_FREQUENCY", "event_analytics",
                 "compute_analytics_summary"):
        assert hasattr(queue, name), f"Gradio renamed Queue.{name}: update quiet_queue_analytics"
    quiet_queue_analytics(demo)
    queue.events_recorded = 5_000
    summary = queue.compute_analytics_summary([{"function": "f", "status": "success",
                                                "process_time": 1.0}])
    assert summary == {"functions": {}}  # the cached (empty) summary: nothing computed
