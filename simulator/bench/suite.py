"""``counselsim bench all``: every benchmark in one run, one JSON file for the README's table.

Runs ``bench coder`` (the offline coder on its AnnoMI dev split), ``bench turn`` (the engine's own
time per turn) and ``bench load`` (a class at once through the web app, bounded in time), and
writes them with the date and the machine into one file. ``docs/performance.md`` is made from
that file (``performance_table``), so the published figures are the measured ones.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulator.bench.turn import machine_info
from simulator.settings import ROOT

DEFAULT_ANNOMI = ROOT.parent / "shared" / "data" / "annomi" / "AnnoMI-full-train.csv"


def _timed(name: str, fn: Any) -> dict[str, Any]:
    print(f"bench {name} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # one failing bench must not hide the others' figures
        return {"bench": name, "error": f"{type(exc).__name__}: {exc}",
                "seconds": round(time.perf_counter() - t0, 1)}
    data = result.model_dump(mode="json") if hasattr(result, "model_dump") else dict(result)
    data["seconds"] = round(time.perf_counter() - t0, 1)
    return data


def run_all(out: Path, *, data: Path | None = None, users: int = 100, turns: int = 5,
            turn_count: int = 200, latency_ms: float = 300.0, load_timeout_s: float = 300.0,
            doc: Path | None = None) -> dict[str, Any]:
    """Run the suite, write ``out``; return a short summary (what the CLI prints last)."""
    from simulator.bench.coder import run_offline_dev_bench
    from simulator.bench.load import run_load_bench
    from simulator.bench.turn import run_turn_bench

    csv = data or DEFAULT_ANNOMI
    if csv.is_dir():
        csv = csv / "AnnoMI-full-train.csv"
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "commands": {
            "coder": f"counselsim bench coder --data {csv} --dev-split",
            "turn": f"counselsim bench turn --turns {turn_count} --latency-ms {latency_ms:g}",
            "load": f"counselsim bench load --users {users} --turns {turns} "
                    f"--latency-ms {latency_ms:g}",
            "turn_single_slot": f"counselsim bench turn --single-slot --turns 100 "
                                f"--latency-ms {latency_ms:g}",
        },
    }
    results["coder"] = _timed("coder", lambda: run_offline_dev_bench(
        csv, progress=lambda m: print(m, file=sys.stderr)))
    results["turn"] = _timed("turn", lambda: run_turn_bench(turns=turn_count,
                                                            latency_ms=latency_ms))
    results["load"] = _timed("load", lambda: run_load_bench(
        users=users, turns=turns, latency_ms=latency_ms, timeout_s=load_timeout_s))
    from simulator.bench.single_slot import run_single_slot_bench

    results["turn_single_slot"] = _timed("turn_single_slot", lambda: run_single_slot_bench(
        turns=100, latency_ms=latency_ms))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if doc is not None:
        doc.parent.mkdir(parents=True, exist_ok=True)
        kept = doc.read_text(encoding="utf-8") if doc.exists() else ""
        doc.write_text(performance_doc(results, out.name, kept), encoding="utf-8")
    return {"out": str(out), **{k: _headline(results[k]) for k in ("coder", "turn", "load")}}


def _headline(r: dict[str, Any]) -> dict[str, Any]:
    if "error" in r:
        return {"error": r["error"]}
    if r.get("bench") == "turn":
        return {"overhead_p95_ms": r["overhead_ms"]["p95"], "ratio_p95": r["ratio"]["p95"],
                "met": r["met"]}
    if r.get("bench") == "load":
        return {"turns_per_s": r["turns_per_s"], "beyond_model_p95_ms": r["beyond_model_ms"]["p95"],
                "errors": r["errors"], "lost_turns": r["lost_turns"], "met": r["met"]}
    return {k: v for k, v in r.items() if isinstance(v, int | float | str)}


def performance_table(results: dict[str, Any]) -> str:
    """The Markdown table of docs/performance.md, from a ``bench all`` file."""
    m = results.get("machine", {})
    rows = [f"Measured {results.get('date', '?')[:10]} on {m.get('cpus', '?')} CPU cores "
            f"(Python {m.get('python', '?')}, {m.get('platform', '?')}).", "",
            "| Benchmark | Figure | Measured | Target |", "|---|---|---|---|"]
    t, ld, c = results.get("turn", {}), results.get("load", {}), results.get("coder", {})
    if "overhead_ms" in t:
        rows += [
            f"| turn | engine overhead per turn, p50 / p95 | {t['overhead_ms']['p50']} / "
            f"{t['overhead_ms']['p95']} ms | p95 < {t['targets']['overhead_p95_ms']:g} ms |",
            f"| turn | time to first client token / model latency ({t['latency_ms']:g} ms), "
            f"p50 / p95 | {t['ratio']['p50']} / {t['ratio']['p95']} | p95 < "
            f"{t['targets']['ratio_p95']:g} |",
            f"| turn | replies complete before their LLM grade | {t['replies_before_grade']}"
            f"/{t['turns']} | all |",
            f"| turn | whole offline turn (no model), p50 / p95 | {t['offline_turn_ms']['p50']} / "
            f"{t['offline_turn_ms']['p95']} ms | |"]
    elif t:
        rows.append(f"| turn | error | {t.get('error')} | |")
    if "beyond_model_ms" in ld:
        rows += [
            f"| load | {ld['users']} trainees x {ld['turns_per_user']} turns, think "
            f"{ld['think_ms']:g} ms: turns/s | {ld['turns_per_s']} | |",
            f"| load | click to reply beyond the model ({ld['model_latency_ms']:g} ms), "
            f"p50 / p95 / p99 | {ld['beyond_model_ms']['p50']} / {ld['beyond_model_ms']['p95']}"
            f" / {ld['beyond_model_ms']['p99']} ms | p95 < "
            f"{ld['targets']['beyond_model_p95_ms']:g} ms |",
            f"| load | errors / lost turns | {ld['errors']} / {ld['lost_turns']} | 0 / 0 |",
            f"| load | page-load requests retried after a dropped connection | "
            f"{ld.get('connection_retries', 0)} | |"]
    elif ld:
        rows.append(f"| load | error | {ld.get('error')} | |")
    rows += single_slot_rows(results.get("turn_single_slot", {}))
    for key in ("cohen_kappa", "accuracy", "macro_f1", "client_talk_macro_f1", "utterances_per_s"):
        if isinstance(c.get(key), int | float):
            rows.append(f"| coder (AnnoMI dev split) | {key} | {c[key]} | |")
    return "\n".join(rows) + "\n"


def single_slot_rows(ss: dict[str, Any]) -> list[str]:
    """Rows for ``bench turn --single-slot`` (client and LLM grader on one one-slot server)."""
    if "ratio" not in ss:
        return [f"| single-slot server | error | {ss.get('error')} | |"] if ss else []
    return [
        f"| single-slot server | time to first client token / model latency "
        f"({ss['latency_ms']:g} ms), LLM grading on, p50 / p95 | {ss['ratio']['p50']} / "
        f"{ss['ratio']['p95']} | p95 <= {ss['targets']['ratio_p95']:g} |",
        f"| single-slot server | turn sent to client request at the server, p50 / p95 | "
        f"{ss['to_server_ms']['p50']} / {ss['to_server_ms']['p95']} ms | |",
        f"| single-slot server | client request waiting for the slot, p50 / p95 | "
        f"{ss['slot_wait_ms']['p50']} / {ss['slot_wait_ms']['p95']} ms | |",
        f"| single-slot server | lost turns / grades ok | {ss['lost_turns']} / "
        f"{ss['grades_ok']} of {ss['turns']} | 0 / all |",
        f"| single-slot server | grade requests preempted by a reply | "
        f"{ss['preempted_grades']} of {ss['grade_requests']} | |",
        f"| single-slot server | measured at, load average (1 min) | "
        f"{str(ss.get('measured', '?'))[:16].replace('T', ' ')}, {ss.get('load_average_1min')} "
        f"| |"]


HAND_WRITTEN = ("<!-- Below: other benches' figures, written by hand; `counselsim bench all` "
                "keeps this part. -->")


def performance_doc(results: dict[str, Any], source: str, existing: str = "") -> str:
    """docs/performance.md: the table, how it was measured, and how to measure it again; then
    whatever ``existing`` (the file as it was) holds after ``HAND_WRITTEN``, kept as it is."""
    cmds = results.get("commands", {})
    lines = [
        "# Performance",
        "",
        f"Made from `{source}`, written by `counselsim bench all` (do not edit the figures by "
        "hand: run the suite again).",
        "",
        performance_table(results).rstrip(),
        "",
        "## What each figure is",
        "",
        "- **turn**: the engine's own time per turn (store the trainee's turn, offline coder, "
        "client state, planner, prompt, storing the reply, starting the grader) around a fake "
        "client model that waits a fixed time before its first token, and a fake LLM grader that "
        "takes twice as long. Overhead = whole turn minus the model's own wait. "
        "\"Replies complete before their LLM grade\" shows the grader never delays the client.",
        "- **load**: the web app started on 127.0.0.1 in a child process; simulated trainees sign "
        "in, open the page and start a session through the same HTTP API the browser uses "
        "(`/login`, `/gradio_api/queue/join`, `/gradio_api/queue/data`), then send turns with a "
        "think time between them. Lost turns = turns the server accepted that are not in the "
        "database afterwards.",
        "- **coder**: the offline coder against AnnoMI's human codes on its held-out dev split.",
        "- **single-slot server**: client and LLM grader both through ChatOpenAI over HTTP to "
        "one loopback server (the stub in `tests/stub_llm_server.py`) that serves one request at "
        "a time and waits the model latency before every answer; turns back to back, the "
        "hardest case. The reply goes first: it is announced from the trainee's send, a running "
        "grade is cancelled and sent again (preempted), and no grade starts until the reply "
        "has streamed (back to back, the grades wait for the trainee to pause). Time to the "
        "server = engine + SDK; the slot wait shows the reply never queued behind a grade.",
        "",
        "## Measure again",
        "",
        "```",
        *[c for c in (cmds.get("coder"), cmds.get("turn"), cmds.get("load"),
                      cmds.get("turn_single_slot")) if c],
        "counselsim bench all --out docs/bench.json --doc docs/performance.md",
        "```",
        "",
        "Figures depend on the machine and on what else runs on it: the disk's fsync time is "
        "most of a turn's overhead (every turn is committed with `synchronous=FULL` before the "
        "model is called).",
    ]
    _, marker, kept = existing.partition(HAND_WRITTEN)
    return "\n".join(lines) + "\n" + (f"\n{marker}{kept}" if marker else "")
