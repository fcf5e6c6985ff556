"""AnnoMI CSV reading (simple and full), majority references, and the bench coder JSON line."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from simulator.bench.coder import run_bench, score_predictions
from simulator.cli.main import app
from simulator.coder.annomi import AnnoMIError, read_annomi, split_by_video
from simulator.coder.labels import CounselorLabels

SIMPLE_COLS = ["transcript_id", "mi_quality", "video_title", "video_url", "topic", "utterance_id",
               "interlocutor", "timestamp", "utterance_text", "main_therapist_behaviour",
               "client_talk_type"]
FULL_COLS = ["mi_quality", "transcript_id", "video_title", "video_url", "topic", "utterance_id",
             "interlocutor", "timestamp", "utterance_text", "annotator_id",
             "therapist_input_exists", "therapist_input_subtype", "reflection_exists",
             "reflection_subtype", "question_exists", "question_subtype",
             "main_therapist_behaviour", "client_talk_type"]

# (transcript, video, utterance id, speaker, text, behaviour, subtype, talk type)
UTTERANCES = [
    ("0", "v0", 0, "therapist", "What brings you here today?", "question", "open", ""),
    ("0", "v0", 1, "client", "My doctor says I drink too much, and I think I want to cut down.",
     "", "", "change"),
    ("0", "v0", 2, "therapist", "So you've been thinking about cutting down.", "reflection",
     "simple", ""),
    ("0", "v0", 3, "client", "Yeah, but honestly I don't see a problem with my drinking.", "", "",
     "sustain"),
    ("0", "v0", 4, "therapist", "Do you drink every day?", "question", "closed", ""),
    ("1", "v1", 0, "therapist", "Thanks for coming in today.", "other", "", ""),
    ("1", "v1", 1, "client", "Sure.", "", "", "neutral"),
    ("1", "v1", 2, "therapist", "How would you like things to be different?", "question", "open",
     ""),
]


def write_simple(path):
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(SIMPLE_COLS)
        for t, v, i, who, text, b, _s, talk in UTTERANCES:
            w.writerow([t, "high", "title", v, "alcohol", i, who, "00:00:01", text, b, talk])
    return path


def write_full(path, annotators=("1", "2", "3")):
    """Three annotators; annotator 3 always dissents on therapist rows (majority must win)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(FULL_COLS)
        for t, v, i, who, text, b, s, talk in UTTERANCES:
            for a in annotators:
                bb, ss = (b, s)
                if a == "3" and who == "therapist":
                    bb, ss = ("therapist_input", "advice")
                cols = {"question": ("", "", ""), "reflection": ("", "", ""),
                        "therapist_input": ("", "", "")}
                if bb in cols:
                    cols[bb] = ("True", ss, "")
                w.writerow(["high", t, "title", v, "alcohol", i, who, "00:00:01", text, a,
                            cols["therapist_input"][0], cols["therapist_input"][1],
                            cols["reflection"][0], cols["reflection"][1],
                            cols["question"][0], cols["question"][1],
                            bb if who == "therapist" else "", talk])
    return path


def test_read_simple(tmp_path):
    f = read_annomi(write_simple(tmp_path / "s.csv"))
    assert f.format == "simple" and not f.has_subtypes
    assert [t.transcript_id for t in f.transcripts] == ["0", "1"]
    t0 = f.transcripts[0]
    assert [u.speaker for u in t0.utterances] == ["counselor", "client", "counselor", "client",
                                                  "counselor"]
    assert t0.utterances[0].behaviour == "question" and t0.utterances[0].subtype is None
    assert t0.utterances[1].talk_type == "change"
    assert [u.text for u in t0.context(2)] == [t0.utterances[0].text, t0.utterances[1].text]


def test_read_full_takes_the_majority(tmp_path):
    f = read_annomi(write_full(tmp_path / "f.csv"))
    assert f.format == "full" and f.has_subtypes
    u = f.transcripts[0].utterances
    assert u[0].n_annotators == 3
    assert (u[0].behaviour, u[0].subtype) == ("question", "open")
    assert (u[2].behaviour, u[2].subtype) == ("reflection", "simple")
    assert u[3].talk_type == "sustain"


def test_full_tie_is_broken_deterministically(tmp_path):
    f = read_annomi(write_full(tmp_path / "f.csv", annotators=("1", "3")))
    # one annotator says question, the other therapist_input: alphabetical first wins
    assert f.transcripts[0].utterances[0].behaviour == "question"


def test_not_annomi(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(AnnoMIError):
        read_annomi(p)


def test_split_by_video_is_deterministic_and_disjoint(tmp_path):
    from simulator.coder.annomi import Transcript

    ts = [Transcript(transcript_id=str(i), video_url=f"v{i % 7}", utterances=[])
          for i in range(20)]
    train, dev = split_by_video(ts)
    assert not {t.video_url for t in train} & {t.video_url for t in dev}
    assert len({t.video_url for t in dev}) == 1  # round(7 * 0.2)
    assert split_by_video(list(reversed(ts)))[1][0].video_url == dev[0].video_url


def test_score_predictions_subtypes_end_to_end(tmp_path):
    f = read_annomi(write_full(tmp_path / "f.csv"))
    refs = [u for t in f.transcripts for u in t.utterances if u.speaker == "counselor"]
    # perfect except: the reflection is coded as a closed question
    preds = [CounselorLabels(behaviour=r.behaviour, subtype=r.subtype) for r in refs]
    preds[1] = CounselorLabels(behaviour="question", subtype="closed")
    s = score_predictions(refs, preds)
    assert s["n"] == 5 and s["accuracy"] == pytest.approx(0.8)
    assert s["question_subtype"]["accuracy_given_behaviour"] == 1.0
    # closed: TP1 FP1 -> F1 2/3; open: F1 1 -> macro 0.8333
    assert s["question_subtype_macro_f1"] == pytest.approx(0.8333)
    assert s["reflection_subtype_macro_f1"] == 0.0  # the only reflection was missed


def test_bench_offline_on_fixture(tmp_path):
    from simulator.coder.offline import load_offline_coder

    r = run_bench(write_full(tmp_path / "f.csv"), load_offline_coder())
    assert r["n"] == 5 and r["format"] == "full"
    assert set(r["per_class_f1"]) == {"question", "reflection", "therapist_input", "other"}
    assert r["accuracy"] >= 0.8  # obvious utterances
    assert r["utterances_per_s"] > 0
    assert "client_talk_macro_f1" in r and "question_subtype_macro_f1" in r


@pytest.mark.parametrize("writer", [write_simple, write_full])
def test_bench_cli_prints_json_last(tmp_path, writer):
    path = writer(tmp_path / "data.csv")
    result = CliRunner().invoke(app, ["bench", "coder", "--data", str(path)])
    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("n", "accuracy", "macro_f1", "cohen_kappa", "per_class_f1", "utterances_per_s",
                "client_talk_macro_f1"):
        assert key in last
    assert last["n"] == 5
    assert last["includes_training_data"] is False
    assert ("reflection_subtype_macro_f1" in last) == (writer is write_full)


def test_bench_cli_dev_split_needs_dev_videos(tmp_path):
    path = write_simple(tmp_path / "data.csv")
    result = CliRunner().invoke(app, ["bench", "coder", "--data", str(path), "--dev-split"])
    assert result.exit_code == 1
    assert "dev-split" in result.output or "dev-split" in (result.stderr or "")


def test_bench_cli_bad_file(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    result = CliRunner().invoke(app, ["bench", "coder", "--data", str(p)])
    assert result.exit_code == 1
