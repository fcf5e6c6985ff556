"""Offline per-turn coaching: codes, a one-line rationale from the rubric's coaching text, and a
better alternative from feedback/coach_alternatives.j2 built on the client's last words."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from simulator.coder.labels import CodedTurn, CounselorLabels, Utterance, UtteranceCode
from simulator.coder.rubric_codes import code_turn
from simulator.content.loader import load_model_file
from simulator.content.rubric import Rubric
from simulator.grader.coach_offline import coach_turn, parse_closed_question, reflect_client
from simulator.grader.grade import grade_turn_offline
from simulator.settings import ROOT

CLIENT = ("Well, the doctor sent me. I don't think I drink more than anyone else on my site.")
TRANSCRIPT = [Utterance(speaker="counselor", text="What brings you here today?"),
              Utterance(speaker="client", text=CLIENT)]


@pytest.fixture(scope="module")
def miti() -> Rubric:
    """The shipped MITI 4.2.1 rubric: its coaching lines are what trainees read."""
    return load_model_file(Rubric, ROOT / "rubrics" / "miti-4.2.1.yaml")


def coded(miti: Rubric, behaviour: str, subtype: str | None, text: str) -> CodedTurn:
    labels = CounselorLabels(behaviour=behaviour, subtype=subtype, coder="test")
    return code_turn(labels, text, miti)


def test_closed_question_gets_an_open_question(miti: Rubric) -> None:
    text = "Do you drink every day?"
    turn = coded(miti, "question", "closed", text)
    assert turn.codes == {"behaviour": "Q", "question_type": "CQ"}
    out = coach_turn(turn, miti, TRANSCRIPT, text)
    assert out.codes == ["Q", "CQ"] and out.featured == "CQ"
    assert out.rationale.startswith("\u201cDo you drink every day?\u201d")
    assert miti.code("CQ").coaching in out.rationale          # wording from the rubric YAML
    assert out.alternative == "What is it like for you to drink every day?"
    assert "\n" not in out.rationale and "\n" not in out.alternative


def test_advice_gets_a_reflection_of_the_clients_last_words(miti: Rubric) -> None:
    text = "You should cut down to two pints a night."
    turn = coded(miti, "therapist_input", "advice", text)
    assert turn.codes["behaviour"] == "PERSUADE"
    out = coach_turn(turn, miti, TRANSCRIPT, text)
    assert out.featured == "PERSUADE"
    assert miti.code("PERSUADE").coaching in out.rationale
    assert out.alternative is not None
    assert out.alternative.startswith(
        "It sounds like you don't think you drink more than anyone else on your site.")
    assert out.alternative.endswith("?")                      # and hands the ideas back


def test_confrontation_gets_a_reflection(miti: Rubric) -> None:
    text = "Come on, be honest, you're an alcoholic."
    turn = CodedTurn(labels=CounselorLabels(behaviour="therapist_input"),
                     codes={"behaviour": "CONFRONT", "question_type": "NQ"}, rubric_id=miti.id)
    out = coach_turn(turn, miti, TRANSCRIPT, text)
    assert out.alternative == ("It sounds like you don't think you drink more than anyone else "
                               "on your site, and you want to make up your own mind about it.")
    assert "Why it matters:" in out.rationale and "What to try: reflect" in out.rationale


def test_no_client_words_yet_still_gives_a_usable_alternative(miti: Rubric) -> None:
    turn = CodedTurn(labels=CounselorLabels(behaviour="therapist_input", subtype="advice"),
                     codes={"behaviour": "PERSUADE", "question_type": "NQ"}, rubric_id=miti.id)
    out = coach_turn(turn, miti, [], "You need to stop.")
    assert out.alternative == "What ideas do you have about what might work for you?"


def test_adherent_turn_is_praised_without_an_invented_alternative(miti: Rubric) -> None:
    turn = CodedTurn(labels=CounselorLabels(behaviour="reflection", subtype="complex"),
                     codes={"behaviour": "CR", "question_type": "NQ"}, rubric_id=miti.id)
    out = coach_turn(turn, miti, TRANSCRIPT, "Part of you wonders whether it matters.")
    assert out.alternative is None and miti.code("CR").coaching in out.rationale


def test_assessment_mode_gives_no_alternative(miti: Rubric) -> None:
    text = "Do you drink every day?"
    out = coach_turn(coded(miti, "question", "closed", text), miti, TRANSCRIPT, text,
                     "assessment")
    assert out.alternative is None and out.rationale


def test_grade_turn_offline_maps_labels_onto_the_session_rubric(miti: Rubric) -> None:
    labels = CounselorLabels(behaviour="question", subtype="closed")
    grade = grade_turn_offline(labels, miti, TRANSCRIPT, "Have you tried quitting?", "coach")
    assert grade.status == "ok" and grade.values == {"behaviour": "Q", "question_type": "CQ"}
    assert grade.alternative == "What was it like when you tried quitting?"


@pytest.mark.parametrize("question, alternative", [
    ("Did you tell your wife?", "What was it like to tell your wife?"),
    ("Are you worried about your health?", "How worried are you about your health?"),
    ("Are you ready to quit?", "How ready are you to quit?"),
    ("Are you taking the metformin?", "How is taking the metformin going for you?"),
    ("Is that every night?", "What else can you tell me about that?"),
    ("Will you give it a try?", "What would it take for you to give it a try?"),
    ("Do you want to quit?", "How important is it to you to quit?"),
    ("Do you think it's a problem?", "What are your thoughts on whether it's a problem?"),
    ("Can you cut down?", "What would help you cut down?"),
    ("Would you consider cutting back?", "What would it take for you to consider cutting back?"),
    ("Does it bother you?", "How does it bother you?"),
    ("OK. So, do you think about quitting?", "What do you think about quitting?"),
    ("Right?", "What else can you tell me about that?"),
    ("Do you drink much coffee?", "How do you feel about how much coffee you drink?"),
    ("Do you get much sleep?", "How do you feel about how much sleep you get?"),
])
def test_closed_questions_rebuilt_as_open(miti: Rubric, question: str, alternative: str) -> None:
    turn = CodedTurn(labels=CounselorLabels(behaviour="question", subtype="closed"),
                     codes={"behaviour": "Q", "question_type": "CQ"}, rubric_id=miti.id)
    assert coach_turn(turn, miti, [], question).alternative == alternative


@pytest.mark.parametrize("client, reflection", [
    ("I just don't see the problem. Everybody on my site drinks.",
     "you just don't see the problem"),
    ("My wife nags me about it.", "your wife nags you about it"),
    ("We argue about it, I was angry.", "you argue about it, you were angry"),
    ("Sarah left me last year and I'm on my own now, you know?",
     "Sarah left you last year and you're on your own now"),
    ("You don't understand my job.", None),               # said to the counselor
    ("You try a day on site and then tell me not to have a beer.", None),  # an imperative
    ("Since you were young.", None),                      # a fragment, never pasted in
    ("Why do you care.", None),                           # a question without its mark
    ("Every night.", None),
    ("Since I lost my job, I stay in bed till noon.",
     "you stay in bed till noon since you lost your job"),
    ("Because it helps me sleep.", "it helps you sleep"),
    ("Nabil calls me and tells me I should get more help.",
     "Nabil calls you and tells you that you should get more help"),
    ("Yeah.", None),
    ("", None),
])
def test_reflect_client_turns_first_person_into_second(client: str,
                                                       reflection: str | None) -> None:
    assert reflect_client(client) == reflection


def test_asking_permission_is_praised_as_seek_not_coached_as_a_closed_question(
        miti: Rubric) -> None:
    text = "Would it be OK if I shared what the guidelines say about units?"
    turn = CodedTurn(labels=CounselorLabels(behaviour="question", subtype="closed"),
                     codes={"behaviour": "SEEK", "question_type": "CQ"}, rubric_id=miti.id)
    out = coach_turn(turn, miti, TRANSCRIPT, text)
    assert out.featured == "SEEK" and out.alternative is None
    assert "Closed questions" not in out.rationale


def test_parse_closed_question_takes_the_last_yes_no_question() -> None:
    q = parse_closed_question("That sounds hard. What happened next? Did you call her?")
    assert q is not None and (q.aux, q.subject, q.verb, q.tail) == ("did", "you", "call", "her")
    assert parse_closed_question("What happened next?") is None
    assert parse_closed_question("You drink a lot.") is None


def test_wording_comes_from_the_template_folder(miti: Rubric, tmp_path: Path) -> None:
    """Educators restyle feedback/: a copy with other words changes the output, no code change."""
    shutil.copy(ROOT / "feedback" / "coach_alternatives.j2", tmp_path / "coach_alternatives.j2")
    path = tmp_path / "coach_alternatives.j2"
    path.write_text(path.read_text().replace("What is it like for you to",
                                             "How does it feel to"))
    text = "Do you drink every day?"
    out = coach_turn(coded(miti, "question", "closed", text), miti, TRANSCRIPT, text,
                     feedback_dir=tmp_path)
    assert out.alternative == "How does it feel to drink every day?"


@pytest.mark.parametrize("rubric_id, labels, text, start", [
    ("helping-skills", ("question", "closed"), "Do you drink every day?",
     "What is it like for you to drink every day?"),
    ("cbt-ctrs", ("therapist_input", "advice"), "You should stop thinking that way.",
     "It sounds like you don't think you drink more than anyone else on your site."),
])
def test_other_shipped_rubrics_get_alternatives_too(rubric_id: str, labels: tuple[str, str],
                                                    text: str, start: str) -> None:
    rubric = load_model_file(Rubric, ROOT / "rubrics" / f"{rubric_id}.yaml")
    grade = grade_turn_offline(CounselorLabels(behaviour=labels[0], subtype=labels[1]),
                               rubric, TRANSCRIPT, text, "coach")
    assert grade.status == "ok" and grade.alternative and grade.alternative.startswith(start)
    code_id = next(iter(grade.values.values()))
    assert isinstance(code_id, str) and rubric.code(code_id).coaching in grade.rationale


def test_an_open_led_question_coded_closed_gets_no_invented_rewrite(miti: Rubric) -> None:
    turn = CodedTurn(labels=CounselorLabels(behaviour="question", subtype="closed"),
                     codes={"behaviour": "Q", "question_type": "CQ"}, rubric_id=miti.id)
    out = coach_turn(turn, miti, TRANSCRIPT, "Hi Sofia, how has your week been?")
    assert out.featured == "CQ" and out.alternative is None


def test_a_simple_reflection_with_nothing_to_reflect_deepens_the_trainees_own(
        miti: Rubric) -> None:
    turn = CodedTurn(labels=CounselorLabels(behaviour="reflection", subtype="simple"),
                     codes={"behaviour": "SR", "question_type": "NQ"}, rubric_id=miti.id)
    said = [Utterance(speaker="client", text="Fine. Whatever you say.")]
    out = coach_turn(turn, miti, said, "So you drink to unwind after work.")
    assert out.alternative == ("It sounds like you drink to unwind after work, and you're "
                               "still working out what that means for you.")


def test_a_reflection_of_something_said_earlier_is_deepened_from_the_trainees_words(
        miti: Rubric) -> None:
    """Grounded in the client's last words ("My wife, my daughter. Normal family."), the
    alternative to reflecting what he said two answers before changed the subject."""
    turn = CodedTurn(labels=CounselorLabels(behaviour="reflection", subtype="simple"),
                     codes={"behaviour": "SR", "question_type": "NQ"}, rubric_id=miti.id)
    said = [Utterance(speaker="counselor", text="What does a drink do for you?"),
            Utterance(speaker="client", text="It relaxes me. That's all. Like everyone."),
            Utterance(speaker="counselor", text="How's home?"),
            Utterance(speaker="client", text="My wife, my daughter. Normal family.")]
    out = coach_turn(turn, miti, said, "So drinking relaxes you.")
    assert out.alternative == ("It sounds like drinking relaxes you, and you're still working "
                               "out what that means for you.")
    # a reflection of the last words still builds on them
    out = coach_turn(turn, miti, said, "So home is a normal family.")
    assert out.alternative is not None and "wife" in out.alternative


def test_a_confrontation_is_never_reflected_back_as_the_alternative(miti: Rubric) -> None:
    turn = CodedTurn(labels=CounselorLabels(behaviour="therapist_input"),
                     codes={"behaviour": "CONFRONT", "question_type": "NQ"}, rubric_id=miti.id)
    said = [Utterance(speaker="client", text="Easy to say sitting there.")]
    out = coach_turn(turn, miti, said, "That's not a good enough reason to ignore your liver.")
    assert out.alternative == "Help me understand how you see it."


def _said(*codes: tuple[str, str, str | None]) -> CounselorLabels:
    """Labels whose utterance codes (MITI 4.2.1) say what the trainee did; the AnnoMI label is the
    misleading one a confrontation often gets (a complex reflection)."""
    text = " ".join(t for t, _, _ in codes)
    utterances, start = [], 0
    for t, behaviour, qtype in codes:
        utterances.append(UtteranceCode(text=t, start=start, end=start + len(t),
                                        behaviour=behaviour, question_type=qtype))
        start += len(t) + 1
    assert text
    return CounselorLabels(behaviour="reflection", subtype="complex", utterances=utterances)


@pytest.mark.parametrize("rubric_id", ["helping-skills", "cbt-ctrs"])
def test_a_confrontation_is_never_praised_under_another_rubric(rubric_id: str) -> None:
    """Helping skills and CTRS have no MITI codes; the utterance coder's Confront still decides
    the turn's code there, so "you're being a martyr" is not praised as a reflection."""
    rubric = load_model_file(Rubric, ROOT / "rubrics" / f"{rubric_id}.yaml")
    text = "Honestly, you're being a martyr."
    turn = code_turn(_said((text, "CONFRONT", None)), text, rubric)
    assert "confronting" in turn.codes.values()
    out = coach_turn(turn, rubric, TRANSCRIPT, text)
    assert out.featured == "confronting"
    assert "Confronting or judging" in out.rationale and "Why it matters" in out.rationale
    assert out.alternative and "martyr" not in out.alternative


def test_helping_skills_takes_advice_filler_and_agreement_from_the_utterance_codes() -> None:
    rubric = load_model_file(Rubric, ROOT / "rubrics" / "helping-skills.yaml")
    advice = "You need to get more sleep, it's that simple."
    assert code_turn(_said((advice, "PERSUADE", None)), advice, rubric).codes == {
        "helping_skill": "direct_guidance"}
    hello = ("Hi Farida.", "NC", None), ("What brings you in today?", "Q", "OQ")
    assert code_turn(_said(*hello).model_copy(update={"behaviour": "question", "subtype": "open"}),
                     "Hi Farida. What brings you in today?", rubric).codes == {
        "helping_skill": "open_question"}
    bye = "Okay, we're out of time."
    turn = code_turn(_said((bye, "NC", None)), bye, rubric)
    assert turn.codes == {"helping_skill": "other"}
    assert coach_turn(turn, rubric, TRANSCRIPT, bye).alternative is None
    ask = "Would it be okay if we booked another appointment for next week?"
    labels = _said((ask, "SEEK", "CQ")).model_copy(update={"behaviour": "question",
                                                             "subtype": "closed"})
    turn = code_turn(labels, ask, rubric)
    assert turn.codes == {"helping_skill": "closed_question"}
    out = coach_turn(turn, rubric, TRANSCRIPT, ask)
    assert out.alternative is None and "agreement" in out.rationale


def test_a_closing_is_not_coached_as_the_reflection_its_words_look_like(miti: Rubric) -> None:
    text = "We're nearly out of time. Thanks for talking with me today."
    turn = CodedTurn(labels=CounselorLabels(behaviour="reflection", subtype="simple"),
                     codes={"behaviour": "SR", "question_type": "NQ"}, rubric_id=miti.id)
    out = coach_turn(turn, miti, TRANSCRIPT * 3, text)
    assert out.featured == "closing" and out.alternative is None
    assert "Ending the session" in out.rationale and "complex reflection" not in out.rationale
    early = coach_turn(turn, miti, TRANSCRIPT, "So you're here because the doctor sent you.")
    assert early.featured == "SR"
