"""The ``counselsim`` command line. Each verb is a thin shell over a module that does the work.

Conventions (DESIGN.md): every verb that takes ``--json`` prints one JSON object as the last line
of its output; exit codes and error lines are ``simulator.cli.common``'s. Settings are built once
per invocation (``settings_for``) with the verb's flags on top.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from simulator.cli.common import Commands, emit_json, fail, settings_for
from simulator.cli.db import register as _register_db
from simulator.cli.records import register as _register_records

app = typer.Typer(cls=Commands, no_args_is_help=True, add_completion=False,
                  help="CounselSim: counseling-skills practice with simulated clients.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks; each prints one JSON object last.")
app.add_typer(bench_app, name="bench")


@app.command()
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders (default: the "
                                                             "configured personas/ and rubrics/).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary last.")] = False,
) -> None:
    """Check persona and rubric YAML: one line per file, every error with file:line:column."""
    from simulator.content.validate import validate_paths

    settings = settings_for()
    folders = [d for d in [*settings.rubric_dirs(), *settings.persona_dirs()]
               if d.is_dir() or d in (settings.rubrics, settings.personas)]
    code, summary = validate_paths(paths or folders, settings)
    if as_json:
        emit_json(summary)
    raise typer.Exit(code)


@app.command()
def schema(kind: Annotated[str, typer.Argument(help="persona or rubric")]) -> None:
    """Print the JSON Schema of persona or rubric files (for editor completion)."""
    from simulator.content.schemas import schema_for

    try:
        typer.echo(json.dumps(schema_for(kind), indent=2))
    except KeyError:
        raise fail(f"unknown kind {kind!r}: use persona or rubric") from None


@app.command("train-coder")
def train_coder(
    data: Annotated[Path | None, typer.Option(help="AnnoMI folder (default ../shared/data/annomi).")] = None,
    out: Annotated[Path | None, typer.Option(help="Model file (default: the shipped one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report last.")] = False,
    transformer: Annotated[bool, typer.Option(help="Also fine-tune the MiniLM model: of AnnoMI or (with --miti) MITI behaviours, or (with --risk) the risk reader (needs pip install -e '.[train]'; about 10-20 minutes on 2 cores).")] = True,
    miti: Annotated[bool, typer.Option("--miti", help="Train the MITI 4.2.1 utterance model instead, on the train part of the trainee-style set (--data: its .jsonl file).")] = False,
    risk: Annotated[bool, typer.Option("--risk", help="Train the risk-topic head (risk questions by meaning) instead, on the same train part; prints cross-validated recall and false alarms.")] = False,
) -> None:
    """Train the offline coder deterministically from AnnoMI; print dev-split metrics."""
    from simulator.cli.coder import train_coder_command, train_miti_command, train_risk_command

    try:
        if miti and risk:
            raise ValueError("--miti and --risk train different models: give one")
        report = (train_miti_command(data, out, as_json, transformer) if miti
                  else train_risk_command(data, out, as_json, transformer) if risk
                  else train_coder_command(data, out, as_json, transformer=transformer))
    except (OSError, ValueError, RuntimeError) as e:
        raise fail(str(e)) from None
    if as_json:
        emit_json(report)


@bench_app.command("coder")
def bench_coder(
    data: Annotated[Path, typer.Option(help="AnnoMI-format CSV (simple or full), or a trainee-style MITI .jsonl file (docs/coder.md).")],
    coder: Annotated[str, typer.Option(help="offline, or a model string for an LLM coder.")] = "offline",
    dev_split: Annotated[bool, typer.Option("--dev-split", help="Only the offline model's dev transcripts.")] = False,
    split: Annotated[str, typer.Option(help="Trainee-style file: test, train or all.")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="Accepted for symmetry; JSON is always last.")] = False,
) -> None:
    """Agreement of a coder with human coding (AnnoMI, or the trainee-style MITI set), and its
    speed; one JSON line last."""
    from simulator.cli.coder import bench_coder_command

    try:
        emit_json(bench_coder_command(data, coder, dev_split, split=split))
    except (OSError, ValueError) as e:
        raise fail(str(e)) from None


@bench_app.command("turn")
def bench_turn(
    turns: Annotated[int, typer.Option(help="Measured turns (after 5 warm-up turns).")] = 200,
    latency_ms: Annotated[float, typer.Option(help="Fake client model's wait before its first token.")] = 300.0,
    grader_latency_ms: Annotated[float | None, typer.Option(help="Fake LLM grader's latency (default 2x).")] = None,
    single_slot: Annotated[bool, typer.Option(help="Client and LLM grader over HTTP on one single-slot server (the stub) instead of in-process fakes.")] = False,
    think_ms: Annotated[float, typer.Option(help="With --single-slot: pause between turns.")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON line.")] = False,
) -> None:
    """The engine's own time per turn around a fake model of fixed latency; one JSON line last."""
    from simulator.bench.turn import format_text, run_turn_bench

    if single_slot:
        from simulator.bench import single_slot as bench_single

        try:
            slot_result = bench_single.run_single_slot_bench(turns=turns, latency_ms=latency_ms,
                                                             think_ms=think_ms)
        except ValueError as e:
            raise fail(str(e)) from None
        if not as_json:
            typer.echo(bench_single.format_text(slot_result))
        emit_json(slot_result.model_dump(mode="json"))
        return
    try:
        result = run_turn_bench(turns=turns, latency_ms=latency_ms,
                                grader_latency_ms=grader_latency_ms)
    except ValueError as e:
        raise fail(str(e)) from None
    if not as_json:
        typer.echo(format_text(result))
    emit_json(result.model_dump(mode="json"))


@bench_app.command("client")
def bench_client(
    persona: Annotated[list[str] | None, typer.Option(help="Persona id (repeat; default: all).")] = None,
    probes: Annotated[Path | None, typer.Option(help="Probe set YAML (default: the shipped one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON line.")] = False,
) -> None:
    """Probe the offline client: on-topic answers, non sequiturs, early closings, leaks."""
    from simulator.bench.client import client_bench_command

    try:
        lines, result = client_bench_command(settings_for(), persona, probes)
    except (KeyError, ValueError) as e:
        raise fail(str(e)) from None
    if not as_json:
        typer.echo("\n".join(lines))
    emit_json(result)


@bench_app.command("load")
def bench_load(
    users: Annotated[int, typer.Option(help="Concurrent simulated trainees (max 500).")] = 100,
    turns: Annotated[int, typer.Option(help="Turns each trainee sends (max 100).")] = 5,
    url: Annotated[str | None, typer.Option(help="A running app on 127.0.0.1 (default: start one).")] = None,
    latency_ms: Annotated[float, typer.Option(help="Fake client model latency; 0 = offline.")] = 300.0,
    think_ms: Annotated[float, typer.Option(help="Mean pause between a trainee's turns.")] = 10_000.0,
    ramp_ms: Annotated[float, typer.Option(help="The trainees arrive over this time.")] = 10_000.0,
    timeout_s: Annotated[float, typer.Option(help="Hard limit for the whole run.")] = 300.0,
    password: Annotated[str | None, typer.Option(help="With --url: the bench000.. accounts' password.")] = None,
    persona: Annotated[str | None, typer.Option(help="With --url: the persona id to practise with.")] = None,
    db: Annotated[str | None, typer.Option(help="With --url: the app's database, to count lost turns; else the (empty) database the started replicas share (default: a temporary SQLite file).")] = None,
    replicas: Annotated[int, typer.Option(help="App processes to start on the one database; trainees are spread over them.")] = 1,
    kill_replica_after: Annotated[float | None, typer.Option(help="With --replicas 2: SIGKILL replica 0 this many seconds into the load; its trainees move to replica 1 and continue their sessions, and its grading jobs are checked to be finished there.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON line.")] = False,
) -> None:
    """A class practising at once through the web app's HTTP API; one JSON line last."""
    from simulator.bench.load import format_text, run_load_bench

    try:
        result = run_load_bench(users=users, turns=turns, latency_ms=latency_ms,
                                think_ms=think_ms, ramp_ms=ramp_ms, url=url, timeout_s=timeout_s,
                                password=password, persona=persona, db=db, replicas=replicas,
                                kill_replica_after=kill_replica_after)
    except (ValueError, RuntimeError) as e:
        raise fail(str(e)) from None
    if not as_json:
        typer.echo(format_text(result))
    emit_json(result.model_dump(mode="json"))


@bench_app.command("abuse")
def bench_abuse(
    connections: Annotated[int, typer.Option(help="Attacking connections (max 200).")] = 40,
    flood_s: Annotated[float, typer.Option(help="Seconds of login flood.")] = 60.0,
    quiet_s: Annotated[float, typer.Option(help="Seconds of turns before the flood.")] = 15.0,
    lock_s: Annotated[float, typer.Option(help="Seconds another process locks the db.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON line.")] = False,
) -> None:
    """Login flood, concurrent sends and a locked database against a live app; JSON last."""
    from simulator.bench.abuse import format_text, run_abuse_bench

    try:
        result = run_abuse_bench(connections=connections, flood_s=flood_s, quiet_s=quiet_s,
                                 lock_s=lock_s)
    except (ValueError, RuntimeError) as e:
        raise fail(str(e)) from None
    if not as_json:
        typer.echo(format_text(result))
    emit_json(result.model_dump(mode="json"))


@bench_app.command("all")
def bench_all(
    out: Annotated[Path, typer.Option(help="Where to write the JSON file.")] = Path("bench.json"),
    data: Annotated[Path | None, typer.Option(help="AnnoMI CSV for bench coder (default ../shared/data/annomi).")] = None,
    users: Annotated[int, typer.Option(help="bench load: trainees.")] = 100,
    turns: Annotated[int, typer.Option(help="bench load: turns per trainee.")] = 5,
    doc: Annotated[Path | None, typer.Option(help="Also write the Markdown performance page.")] = None,
) -> None:
    """Run coder (dev split), turn and load; write one JSON file; its summary as the last line."""
    from simulator.bench.suite import run_all

    try:
        emit_json(run_all(out, data=data, users=users, turns=turns, doc=doc))
    except (OSError, ValueError, RuntimeError) as e:
        raise fail(str(e)) from None


@app.command()
def chat(
    persona: Annotated[str, typer.Option(help="Persona id (see `counselsim validate`).")],
    client_model: Annotated[str | None, typer.Option(help="e.g. offline, openai:gpt-4o-mini")] = None,
    grader_model: Annotated[str | None, typer.Option(help="Model string for the grader.")] = None,
    rubric: Annotated[str | None, typer.Option(help="Rubric id, one the persona offers "
                                                   "(default: the persona's default_rubric).")] = None,
    mode: Annotated[str, typer.Option(help="coach or assessment")] = "coach",
    trainee: Annotated[str, typer.Option(help="Name the session is stored under.")] = "terminal",
    input_file: Annotated[Path | None, typer.Option("--input", help="Trainee turns, one per "
                                                    "line (non-interactive).")] = None,
    db: Annotated[str | None, typer.Option(help="Database: a file, sqlite:///path or postgresql://... (default: settings)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole session as JSON last.")] = False,
) -> None:
    """Practise in the terminal: streamed client replies, your turns coded as you go."""
    from simulator.cli.chat import chat_command
    from simulator.service.practice import Practice

    if mode not in ("coach", "assessment"):
        raise fail(f"--mode must be coach or assessment, not {mode!r}")
    if input_file is not None and not input_file.is_file():
        raise fail(f"--input {input_file}: no such file")
    settings = settings_for(client_model=client_model, grader_model=grader_model, db=db)
    practice = Practice.from_settings(settings)
    if persona not in practice.library.personas:
        known = ", ".join(sorted(practice.library.personas)) or "none"
        raise fail(f"unknown persona {persona!r} (known: {known})")
    chosen = practice.library.persona(persona)
    if rubric is not None and chosen.rubrics and rubric not in chosen.rubrics:
        raise fail(f"--rubric {rubric!r} is not offered for {persona!r} "
                   f"(choose one of: {', '.join(chosen.rubrics)})")
    if rubric is not None and rubric not in practice.library.rubrics:
        known = ", ".join(sorted(practice.library.rubrics)) or "none"
        raise fail(f"unknown rubric {rubric!r} (known: {known})")
    summary = chat_command(practice, trainee=trainee, persona_id=persona, rubric_id=rubric,
                           mode=mode, input_path=str(input_file) if input_file else None,
                           as_json=as_json)
    if as_json:
        emit_json(summary)
    else:
        typer.echo(f"\nsession {summary['session_id']} saved; "
                   f"report: counselsim report {summary['session_id']} --format html")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    personas: Annotated[Path | None, typer.Option(help="Persona folder.")] = None,
    rubrics: Annotated[Path | None, typer.Option(help="Rubric folder.")] = None,
    db: Annotated[str | None, typer.Option(help="Database: a file, sqlite:///path or postgresql://...")] = None,
) -> None:
    """Start the web app (trainees, supervisors, educators). First start: prints the admin password."""
    from simulator.web.serve import serve_command

    serve_command(settings_for(host=host, port=port, personas=personas, rubrics=rubrics, db=db))


@app.command()
def regrade(
    session_id: Annotated[str, typer.Argument(help="Session id (a unique prefix is enough).")],
    grader_model: Annotated[str | None, typer.Option(
        "--grader-model", help="Model string; default: the model the session was graded with.")
    ] = None,
    only_pending: Annotated[bool, typer.Option(
        "--only-pending", help="Leave failed and missing grades alone.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary last.")] = False,
) -> None:
    """Grade again the turns whose grade is pending, failed or missing (session never waits)."""
    from simulator.service.regrade import RegradeError, run_regrade

    try:
        result = run_regrade(session_id, grader_model, settings_for(),
                             include_failed=not only_pending, include_missing=not only_pending)
    except RegradeError as exc:
        raise fail(str(exc)) from None
    for t in result.turns:
        shown = ", ".join(f"{k}={v}" for k, v in t.values.items()) or (t.error or "")
        typer.echo(f"turn {t.idx}: {t.was} -> {t.status}  {shown}")
    typer.echo(f"{result.session_id}: {result.ok} ok, {result.pending} pending, "
               f"{result.failed} failed (model {result.model})")
    if as_json:
        emit_json(result.model_dump(mode="json"))


@app.command()
def selfplay(
    persona: Annotated[str, typer.Option(help="Persona id.")],
    counselor: Annotated[str, typer.Option(help="skilled or unskilled")] = "skilled",
    turns: Annotated[int, typer.Option(min=1, max=200, help="Counselor turns.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed (same seed, same session).")] = 0,
    counselor_model: Annotated[str | None, typer.Option(help="LLM counselor instead of the script.")] = None,
    client_model: Annotated[str | None, typer.Option(help="LLM client (default offline).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the session as JSON last.")] = False,
) -> None:
    """A scripted (or LLM) counselor talks to a persona, so educators can check it behaves as designed."""
    from simulator.service.selfplay import selfplay_command

    try:
        lines, result = selfplay_command(settings_for(), persona, counselor, turns, seed,
                                         counselor_model, client_model)
    except (KeyError, ValueError) as e:
        raise fail(str(e).strip("'\"")) from None
    except RuntimeError as e:  # ModelUnavailable: a clear message already
        raise fail(str(e)) from None
    if as_json:
        emit_json(result)
    else:
        typer.echo("\n".join(lines))


# report, sessions list, export, progress, users (simulator/cli/records.py)
_register_records(app)
_register_db(app)


def _register_doctor() -> None:
    from simulator.cli.doctor import doctor

    app.command("doctor")(doctor)


_register_doctor()


def main() -> None:  # pragma: no cover - console entry
    app()
