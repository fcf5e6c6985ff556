"""Reading AnnoMI CSV files into transcripts with one reference label per utterance.

Two upstream formats share their columns: ``-simple`` has one row per utterance; ``-full`` has one
row per annotator per utterance (plus subtype columns), and the reference is the majority label.
The format is detected from the columns, so ``bench coder`` takes either, and any file in the same
column format (such as the held-out portion) works without changes.

Ties between annotators are broken deterministically (alphabetical label order) so every run gives
the same reference.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel

from simulator.coder.labels import Speaker, Utterance
from simulator.errors import InvalidInput

SIMPLE_COLUMNS = {"transcript_id", "video_url", "utterance_id", "interlocutor", "utterance_text",
                  "main_therapist_behaviour", "client_talk_type"}
FULL_EXTRA_COLUMNS = {"annotator_id"}
SUBTYPE_COLUMN = {
    "question": "question_subtype",
    "reflection": "reflection_subtype",
    "therapist_input": "therapist_input_subtype",
}
SPEAKER: dict[str, Speaker] = {"therapist": "counselor", "client": "client"}


class AnnoMIError(InvalidInput):
    """A CSV that is not in AnnoMI's column format."""


class LabelledUtterance(BaseModel):
    speaker: Speaker
    text: str
    utterance_id: int
    behaviour: str | None = None
    """Reference main therapist behaviour (therapist rows only)."""
    subtype: str | None = None
    """Reference subtype of the main behaviour, when the file has subtype columns."""
    talk_type: str | None = None
    """Reference client talk type (client rows only)."""
    n_annotators: int = 1


class Transcript(BaseModel):
    transcript_id: str
    video_url: str
    mi_quality: str = ""
    topic: str = ""
    utterances: list[LabelledUtterance]

    def context(self, index: int) -> list[Utterance]:
        """The transcript before utterance ``index``, oldest first, as a coder sees it."""
        return [Utterance(speaker=u.speaker, text=u.text)
                for u in self.utterances[:index]]


class AnnoMIFile(BaseModel):
    path: str
    format: str  # "simple" | "full"
    has_subtypes: bool
    transcripts: list[Transcript]


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value if value and value.lower() not in {"nan", "none", "null"} else None


def _majority(values: Iterable[str | None]) -> str | None:
    counts = Counter(v for v in values if v)
    if not counts:
        return None
    best = max(counts.values())
    return sorted(k for k, n in counts.items() if n == best)[0]


def read_annomi(path: str | Path) -> AnnoMIFile:
    """Read an AnnoMI-format CSV (simple or full) into transcripts ordered by utterance id."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or [])
        missing = SIMPLE_COLUMNS - columns
        if missing:
            raise AnnoMIError(f"{path}: not an AnnoMI CSV, missing columns {sorted(missing)}")
        rows = list(reader)
    full = columns >= FULL_EXTRA_COLUMNS
    has_subtypes = columns >= set(SUBTYPE_COLUMN.values())

    grouped: dict[tuple[str, int], list[dict[str, str]]] = {}
    order: list[tuple[str, int]] = []
    for row in rows:
        try:
            key = (row["transcript_id"].strip(), int(float(row["utterance_id"])))
        except ValueError as e:
            raise AnnoMIError(f"{path}: bad utterance_id {row['utterance_id']!r}") from e
        if key not in grouped:
            grouped[key] = []
            order.append(key)
        grouped[key].append(row)

    transcripts: dict[str, Transcript] = {}
    for key in order:
        group = grouped[key]
        first = group[0]
        speaker: Speaker | None = SPEAKER.get(first["interlocutor"].strip().lower())
        if speaker is None:
            raise AnnoMIError(f"{path}: unknown interlocutor {first['interlocutor']!r}")
        utt = LabelledUtterance(speaker=speaker, text=first["utterance_text"] or "",
                                utterance_id=key[1], n_annotators=len(group))
        if speaker == "counselor":
            utt.behaviour = _majority(_clean(r["main_therapist_behaviour"]) for r in group)
            column = SUBTYPE_COLUMN.get(utt.behaviour or "")
            if has_subtypes and column:
                agreeing = [r for r in group
                            if _clean(r["main_therapist_behaviour"]) == utt.behaviour]
                utt.subtype = _majority(_clean(r[column]) for r in agreeing)
        else:
            utt.talk_type = _majority(_clean(r["client_talk_type"]) for r in group)
        t = transcripts.get(key[0])
        if t is None:
            t = transcripts[key[0]] = Transcript(
                transcript_id=key[0], video_url=first["video_url"].strip(),
                mi_quality=(first.get("mi_quality") or "").strip(),
                topic=(first.get("topic") or "").strip(), utterances=[])
        t.utterances.append(utt)
    for t in transcripts.values():
        t.utterances.sort(key=lambda u: u.utterance_id)
    return AnnoMIFile(path=str(path), format="full" if full else "simple",
                      has_subtypes=has_subtypes, transcripts=list(transcripts.values()))


def split_by_video(transcripts: Sequence[Transcript], dev_fraction: float = 0.2,
                   seed: int = 13) -> tuple[list[Transcript], list[Transcript]]:
    """Deterministic train/dev split by source video, so no video is on both sides.

    Videos are ordered by a hash of their URL (independent of file row order), then shuffled with
    a seeded RNG; the first ``dev_fraction`` of videos are dev.
    """
    videos = sorted({t.video_url for t in transcripts},
                    key=lambda v: hashlib.sha256(v.encode()).hexdigest())
    random.Random(seed).shuffle(videos)
    n_dev = max(1, round(len(videos) * dev_fraction)) if len(videos) > 1 else 0
    dev_videos = set(videos[:n_dev])
    train = [t for t in transcripts if t.video_url not in dev_videos]
    dev = [t for t in transcripts if t.video_url in dev_videos]
    return train, dev


def default_data_dir() -> Path:
    """``../shared/data/annomi`` beside the checkout, where the training portion lives."""
    from simulator.settings import ROOT

    return ROOT.parent / "shared" / "data" / "annomi"


def training_file(data_dir: str | Path) -> Path:
    """The file to train from: the -full file (it carries subtypes), else the -simple one."""
    data_dir = Path(data_dir)
    for name in ("AnnoMI-full-train.csv", "AnnoMI-simple-train.csv"):
        if (data_dir / name).exists():
            return data_dir / name
    raise AnnoMIError(f"{data_dir}: no AnnoMI-full-train.csv or AnnoMI-simple-train.csv")
