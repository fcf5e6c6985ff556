"""Research export: one row per turn (abandoned branches included), as CSV or JSON Lines.

Each row carries the session's context (trainee, cohort, persona and rubric with their content
hashes, models, mode), the turn (position, speaker, text, branch, client act, disclosed fact,
rapport/resistance), and for counselor turns the machine codes, supervisor corrections and
effective codes. In CSV the effective value of each turn item is also a column ``code.<item>``
(the union over the exported rubrics) so a spreadsheet can count them without parsing JSON.
``pseudonymize`` replaces trainee names with stable keyed hashes (``t-<12 hex>``, HMAC-SHA256 under
a random secret kept in this install's database): the same person has the same pseudonym in every
export from this install, but the class list alone cannot reverse it.

CSV cells that a spreadsheet would run as a formula (starting with = + - @, tab or CR) get a
leading apostrophe (OWASP's CSV-injection advice); JSON Lines keeps every text exactly.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any, Literal, TextIO

from simulator.store import SessionFilter, Store

ExportFormat = Literal["csv", "jsonl"]

FIELDS = ["session_id", "trainee", "cohort", "persona_id", "persona_version", "persona_sha",
          "rubric_id", "rubric_version", "rubric_sha", "mode", "client_model", "grader_model",
          "coder", "session_status", "session_created", "turn_id", "idx", "speaker", "text",
          "created", "abandoned_branch", "act", "fact_id", "rapport", "resistance",
          "machine_codes", "corrections", "effective_codes", "grade_status", "grade_rationale",
          "grade_alternative"]


def pseudonym(store: Store, name: str) -> str:
    return "t-" + store.keyed_hash("pseudonym", name)[:12]


def export_rows(store: Store, filters: SessionFilter | None = None, *,
                pseudonymize: bool = False) -> Iterator[dict[str, Any]]:
    """Rows in session order (oldest first), turns by branch then position."""
    sessions = sorted(store.list_sessions(filters or SessionFilter()), key=lambda s: s.created)
    for s in sessions:
        coded = {e.turn.id: e for e in store.effective_codes(s.session_id,
                                                             include_abandoned=True)}
        for t in store.all_turns(s.session_id):
            e = coded.get(t.id)
            state = t.state or {}
            yield {
                "session_id": s.session_id,
                "trainee": pseudonym(store, s.trainee) if pseudonymize else s.trainee,
                "cohort": s.cohort, "persona_id": s.persona_id,
                "persona_version": s.persona_version, "persona_sha": s.persona_sha,
                "rubric_id": s.rubric_id, "rubric_version": s.rubric_version,
                "rubric_sha": s.rubric_sha, "mode": s.mode, "client_model": s.client_model,
                "grader_model": s.grader_model, "coder": s.coder, "session_status": s.status,
                "session_created": s.created, "turn_id": t.id, "idx": t.idx,
                "speaker": t.speaker, "text": t.text, "created": t.created,
                "abandoned_branch": t.abandoned_branch, "act": t.act, "fact_id": t.fact_id,
                "rapport": state.get("rapport"), "resistance": state.get("resistance"),
                "machine_codes": e.machine if e else None,
                "corrections": e.corrections if e else None,
                "effective_codes": e.values if e else None,
                "grade_status": e.grade.status if e and e.grade else None,
                "grade_rationale": e.grade.rationale if e and e.grade else None,
                "grade_alternative": e.grade.alternative if e and e.grade else None,
            }


def write_export(store: Store, fmt: ExportFormat, out: TextIO,
                 filters: SessionFilter | None = None, *, pseudonymize: bool = False) -> int:
    """Write the export to ``out``; returns the number of rows."""
    rows = export_rows(store, filters, pseudonymize=pseudonymize)
    n = 0
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
        return n
    if fmt != "csv":
        raise ValueError(f"format must be csv or jsonl, not {fmt!r}")
    materialized = list(rows)
    items = sorted({k for r in materialized for k in (r["effective_codes"] or {})})
    writer = csv.DictWriter(out, fieldnames=FIELDS + [f"code.{i}" for i in items])
    writer.writeheader()
    for row in materialized:
        flat = {k: _cell(json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v)
                for k, v in row.items()}
        for i in items:
            flat[f"code.{i}"] = (row["effective_codes"] or {}).get(i)
        writer.writerow(flat)
        n += 1
    return n


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
