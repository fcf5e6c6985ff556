"""Bodies of ``counselsim train-coder`` and ``counselsim bench coder`` (registered in cli.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from simulator.coder.labels import Coder


def make_coder(spec: str) -> Coder:
    """``offline`` (or a path to a saved ``.npz`` model, with its ``.behaviour.onnx`` when it
    was trained with one) gives the offline coder; anything else is
    a model string for ``simulator.llm.providers.chat_model`` and gives an ``LLMCoder``."""
    from simulator.coder.offline import load_offline_coder

    if spec == "offline":
        return load_offline_coder()
    if spec.endswith(".npz") and Path(spec).exists():
        return load_offline_coder(spec)
    from simulator.coder.llm import LLMCoder

    return LLMCoder.from_spec(spec)


def train_coder_command(data: Path | None, out: Path | None, as_json: bool, *,
                        transformer: bool = True) -> dict[str, Any]:
    from simulator.coder.annomi import default_data_dir
    from simulator.coder.training import train_coder

    report = train_coder(data or default_data_dir(), out, transformer=transformer,
                         progress=lambda m: print(m, file=sys.stderr))
    if not as_json:
        dev = report["dev"]
        split = report["split"]
        print(f"model: {report['model']} ({report['size_bytes'] / 1e6:.1f} MB, "
              f"fit {report['fit_seconds']} s)")
        if "behaviour_model" in report:
            print(f"behaviour model: {report['behaviour_model']} "
                  f"({report['behaviour_model_bytes'] / 1e6:.1f} MB)")
            alone = report["dev_tfidf_only"]
            print(f"dev, TF-IDF alone: macro-F1 {alone['macro_f1']:.3f}  "
                  f"kappa {alone['cohen_kappa']:.3f}")
        print(f"split: train {split['train']['videos']} videos / {split['train']['transcripts']} "
              f"transcripts / {split['train']['counselor_utterances']} therapist utterances; "
              f"dev {split['dev']['videos']} / {split['dev']['transcripts']} / "
              f"{split['dev']['counselor_utterances']}")
        print(f"dev: macro-F1 {dev['macro_f1']:.3f}  kappa {dev['cohen_kappa']:.3f}  "
              f"accuracy {dev['accuracy']:.3f}")
        print("per class F1: " + json.dumps(dev["per_class_f1"]))
    return report


def train_miti_command(data: Path | None, out: Path | None, as_json: bool,
                       transformer: bool = True) -> dict[str, Any]:
    from simulator.coder.miti_training import train_miti

    report = train_miti(data, out, progress=lambda m: print(m, file=sys.stderr),
                        transformer=transformer)
    if not as_json:
        print(f"model: {report['model']} ({report['size_bytes'] / 1e3:.0f} kB), "
              f"{report['train_rows']} train-part utterances, chosen: {report['chosen']}")
        print("cross-validated macro-F1 on the train part: " + json.dumps(report["cv_macro_f1"]))
    return report


def train_risk_command(data: Path | None, out: Path | None, as_json: bool,
                       transformer: bool = True) -> dict[str, Any]:
    from simulator.coder.risk_training import train_risk_head

    report = train_risk_head(data, out, transformer=transformer,
                             progress=None if as_json else lambda m: print(m, file=sys.stderr))
    if not as_json:
        print(f"model: {report['model']} ({report['size_bytes'] / 1e3:.0f} kB), "
              f"{report['train_rows']} train-part rows, C={report['C']:g}, "
              f"threshold {report['threshold']:g}")
        for name, s in report["cv"].items():
            print(f"5-fold CV, {name}: risk recall {s['recall']:.3f}, topics found that the row "
                  f"does not have {s['wrong_topics']}, false alarms on non-risk questions "
                  f"{s['false_alarms']:.3f}")
        if "reader" in report:
            print(f"reader: {report['reader']} ({report['reader_bytes'] / 1e6:.1f} MB, "
                  f"fine-tuned in {report['reader_fit_seconds']} s)")
    return report


def miti_utterance_coder(spec: str) -> Any:
    """``offline`` (or a saved AnnoMI ``.npz``) gives the shipped MITI utterance coder over it;
    anything else is a model string for the LLM MITI coder, prompted from the MITI rubric."""
    from simulator.coder.miti import miti_coder

    if spec == "offline" or (spec.endswith(".npz") and Path(spec).exists()):
        return miti_coder(None if spec == "offline" else make_coder(spec))
    from simulator.cli.common import settings_for
    from simulator.coder.llm import LLMMitiCoder
    from simulator.content.library import load_paths

    rubric = load_paths(settings_for().rubric_dirs()).rubric("miti-4.2.1")
    return LLMMitiCoder.from_spec(spec, rubric)


def print_miti_table(result: dict[str, Any]) -> None:
    """The per-code table a person reads (the JSON line follows it)."""
    print(f"{result['coder']} on {result['data']} ({result['split']} part, "
          f"{result['utterances']} utterances)")
    print(f"{'code':<14}{'precision':>10}{'recall':>8}{'F1':>7}{'n':>5}")
    for code, m in result["per_code"].items():
        print(f"{code:<14}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['f1']:>7.3f}{m['n']:>5}")
    print(f"macro-F1 (ten MITI behaviours) {result['macro_f1']:.3f}  "
          f"kappa {result['cohen_kappa']:.3f}  accuracy {result['accuracy']:.3f}")
    print(f"MI-non-adherent recall {result['mi_non_adherent_recall']}  "
          f"(n={result['mi_non_adherent_n']})  question type accuracy "
          f"{result['question_type_accuracy']}")
    print(f"risk recall {result['risk_recall']} over {result['risk_items']} items; false alarms "
          f"on non-risk questions {result['risk_false_alarm_rate']} "
          f"(n={result['non_risk_questions']})")
    for topic, m in result["risk_per_topic"].items():
        print(f"  {topic:<20} recall {m['recall']}  n={m['n']}  false alarms {m['false_alarms']}")
    live = result.get("live_context") or {}
    if live:
        print(f"as in a live session ({live['rows_given_a_client_line']} rows given a client line "
              f"before them): macro-F1 {live['macro_f1']:.3f}, MI-non-adherent recall "
              f"{live['mi_non_adherent_recall']}; "
              f"{len(live['changed_by_the_client_line'])} codes changed by the client line")
    print(f"speed: {result['utterances_per_s']} utterances/s in bulk; a two-utterance turn "
          f"p50 {result.get('turn_ms_p50')} ms, p95 {result.get('turn_ms_p95')} ms (one core)")


def bench_coder_command(data: Path, coder_spec: str, dev_split: bool,
                        split: str = "test") -> dict[str, Any]:
    from simulator.bench.coder import run_bench
    from simulator.coder.miti_data import is_trainee_file
    from simulator.coder.offline import OfflineCoder, load_offline_coder

    if is_trainee_file(data):
        from simulator.bench.coder_miti import run_miti_bench

        if split not in {"test", "train", "all"}:
            raise ValueError(f"--split {split!r}: use test, train or all")
        result = run_miti_bench(data, miti_utterance_coder(coder_spec), split=split,
                                progress=lambda m: print(m, file=sys.stderr))
        print_miti_table(result)
        return result
    coder = make_coder(coder_spec)
    # The dev split is the one recorded in the offline model (the LLM coder is scored on the same
    # transcripts); training-data overlap only applies to a trained (offline) coder.
    own = coder.model.meta if isinstance(coder, OfflineCoder) else {}
    meta = own or load_offline_coder().model.meta
    result = run_bench(data, coder, dev_split=dev_split, dev_videos=meta.get("dev_videos", []),
                       train_videos=own.get("train_videos", []),
                       progress=lambda m: print(m, file=sys.stderr))
    result.setdefault("includes_training_data", False)
    return result
