"""AnnoMI labels onto rubric codes: cue precedence, subtype over bare behaviour, defaults."""

from __future__ import annotations

import pytest

from simulator.coder.labels import CounselorLabels
from simulator.coder.rubric_codes import code_turn
from simulator.content.rubric import Rubric
from simulator.settings import ROOT


def _rubric() -> Rubric:
    return Rubric.model_validate({
        "id": "tiny", "version": 1, "title": "Tiny", "citation": "test",
        "turn_items": [
            {"id": "behaviour", "title": "Behaviour", "kind": "categorical", "definition": "d",
             "default_code": "NC",
             "codes": [
                 {"id": "AF", "name": "Affirm", "definition": "d",
                  "offline": {"cues": [r"\bwell done\b", r"\byou(?:'ve| have) worked hard\b"]}},
                 {"id": "Q", "name": "Question", "definition": "d",
                  "offline": {"annomi": ["question"]}},
                 {"id": "SR", "name": "Simple", "definition": "d",
                  "offline": {"annomi": ["reflection:simple"]}},
                 {"id": "CR", "name": "Complex", "definition": "d",
                  "offline": {"annomi": ["reflection:complex"]}},
                 {"id": "REF", "name": "Some reflection", "definition": "d",
                  "offline": {"annomi": ["reflection"]}},
                 {"id": "GI", "name": "Info", "definition": "d",
                  "offline": {"annomi": ["therapist_input:information"]}},
                 {"id": "NC", "name": "Not coded", "definition": "d"},
             ]},
            {"id": "question_type", "title": "Q type", "kind": "categorical", "definition": "d",
             "default_code": "NQ",
             "codes": [
                 {"id": "OQ", "name": "Open", "definition": "d",
                  "offline": {"annomi": ["question:open"]}},
                 {"id": "CQ", "name": "Closed", "definition": "d",
                  "offline": {"annomi": ["question:closed"]}},
                 {"id": "NQ", "name": "None", "definition": "d"},
             ]},
            {"id": "nodefault", "title": "No default", "kind": "categorical", "definition": "d",
             "codes": [
                 {"id": "X", "name": "X", "definition": "d", "offline": {"annomi": ["other"]}},
                 {"id": "Y", "name": "Y", "definition": "d"},
             ]},
            {"id": "warmth", "title": "Warmth", "kind": "scalar", "definition": "d",
             "min": 1, "max": 5},
        ],
    })


def L(behaviour: str, subtype: str | None = None) -> CounselorLabels:
    return CounselorLabels(behaviour=behaviour, subtype=subtype)  # type: ignore[arg-type]


def test_open_question():
    turn = code_turn(L("question", "open"), "What brings you here?", _rubric())
    assert turn.codes == {"behaviour": "Q", "question_type": "OQ"}
    assert turn.code_list() == ["Q", "OQ"]
    assert turn.rubric_id == "tiny"


def test_subtype_match_beats_bare_behaviour():
    r = _rubric()
    assert code_turn(L("reflection", "complex"), "You want more.", r).codes["behaviour"] == "CR"
    assert code_turn(L("reflection", "simple"), "You feel stuck.", r).codes["behaviour"] == "SR"
    # no subtype: only the bare label can match
    assert code_turn(L("reflection"), "You feel stuck.", r).codes["behaviour"] == "REF"


def test_cue_wins_over_annomi_label_case_insensitively():
    turn = code_turn(L("question", "closed"), "WELL DONE for coming, did you walk?", _rubric())
    assert turn.codes["behaviour"] == "AF"
    assert turn.codes["question_type"] == "CQ"  # cues of one item do not touch another item


def test_default_and_missing_default():
    turn = code_turn(L("therapist_input", "advice"), "You should stop.", _rubric())
    assert turn.codes["behaviour"] == "NC"  # advice not mapped -> default
    assert turn.codes["question_type"] == "NQ"
    assert "nodefault" not in turn.codes  # no match and no default: left out
    assert "warmth" not in turn.codes  # scalar items are not coded offline
    assert code_turn(L("other"), "Okay.", _rubric()).codes["nodefault"] == "X"


def test_regexes_are_compiled_once_per_rubric(monkeypatch):
    import re

    r = _rubric()
    code_turn(L("other"), "hi", r)
    calls = []
    real = re.compile
    monkeypatch.setattr(re, "compile", lambda *a, **k: calls.append(a) or real(*a, **k))
    for _ in range(3):
        code_turn(L("other"), "well done", r)
    assert calls == []


MITI = ROOT / "rubrics" / "miti-4.2.1.yaml"


@pytest.mark.skipif(not MITI.exists(), reason="the shipped MITI rubric is not written yet")
def test_shipped_miti_rubric():
    from simulator.content.library import load_library

    rubric = load_library().rubrics["miti-4.2.1"]
    assert code_turn(L("question", "open"), "What brings you here today?",
                     rubric).code_list() == ["Q", "OQ"]
    assert code_turn(L("question", "closed"), "Do you smoke?", rubric).code_list() == ["Q", "CQ"]
    assert code_turn(L("reflection", "complex"), "Part of you wants to stop.",
                     rubric).code_list() == ["CR", "NQ"]
    assert code_turn(L("reflection", "simple"), "You feel stuck.",
                     rubric).code_list() == ["SR", "NQ"]
    assert code_turn(L("therapist_input", "information"), "Most people sleep about 7 hours.",
                     rubric).codes["behaviour"] == "GI"
    assert code_turn(L("other"), "Mm-hmm.", rubric).codes["behaviour"] == "NC"


@pytest.mark.skipif(not MITI.exists(), reason="the shipped MITI rubric is not written yet")
def test_offline_coder_through_miti_end_to_end():
    from simulator.coder.labels import Utterance
    from simulator.coder.offline import load_offline_coder
    from simulator.content.library import load_library

    rubric = load_library().rubrics["miti-4.2.1"]
    coder = load_offline_coder()
    ctx = [Utterance(speaker="client", text="I managed to cut down to two drinks last week.")]

    def codes(text: str) -> list[str]:
        return code_turn(coder.code_counselor(text, ctx), text, rubric).code_list()

    assert codes("What brings you here today?") == ["Q", "OQ"]
    assert codes("That took a lot of courage, well done.")[0] == "AF"  # a cue, not an AnnoMI label
    assert codes("Mm-hmm.") == ["NC", "NQ"]
