"""The training dataset a task acquires: typed rows with provenance, deduplicated, aggregated.

Every successful observation of an executed trajectory becomes rows:
- `passage`: one per retrieved passage (its article id kept, so exports can prove which
  sources a dataset touches);
- `demonstration`: one per instruction/response pair the demonstration API wrote;
- `qa`: the question/answer pair of the question-answering API.
A row's id is the task id plus a hash of its kind and content, so the same passage fetched by
two trajectories of one task is one row, and a resumed run re-derives the same ids.

The policy update reads this dataset for every instruction of the task: in context, the rows
most relevant to the instruction within a character budget, rendered in the dataset's own
order (so when everything fits, every instruction of a task gets the same reference block and
llama.cpp reuses its state from one call to the next).
"""
from __future__ import annotations

import hashlib
import re
from typing import Any

KINDS = ("passage", "demonstration", "qa")


def _row_id(task_id: str, kind: str, content: str) -> str:
    return f"{task_id}:{kind}:{hashlib.sha256(content.encode('utf-8')).hexdigest()[:12]}"


def rows_from_observations(task_id: str, trajectory_id: str, iteration: int | str, calls: list[dict[str, Any]],
                           observations: list[dict[str, Any]], passage_chars: int = 700,
                           family: str = "") -> list[dict[str, Any]]:
    """Typed rows from one trajectory's observations (failed calls give none), duplicates dropped."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for j, obs in enumerate(observations):
        if not obs.get("ok"):
            continue
        api = obs.get("api", "")
        payload = obs.get("payload") or {}
        args = calls[j]["arguments"] if j < len(calls) else {}
        base = {"task_id": task_id, "family": family, "trajectory_id": trajectory_id, "iteration": iteration,
                "api": api,
                "arguments": args, "cost": obs.get("cost", 0.0)}
        found: list[dict[str, Any]] = []
        if api == "information_retrieval":
            for p in payload.get("passages") or []:
                text = f"{p.get('title', '')}: {str(p.get('text', ''))[:passage_chars]}".strip()
                found.append({"kind": "passage", "text": text, "instruction": None, "response": None,
                              "source": str(p.get("id", "")), "title": p.get("title", "")})
        elif api == "demonstration_generation":
            for p in payload.get("pairs") or []:
                found.append({"kind": "demonstration", "text": f"Q: {p['instruction']}\nA: {p['response']}",
                              "instruction": p["instruction"], "response": p["response"], "source": "", "title": ""})
        elif api == "question_answering":
            q, a = payload.get("question"), payload.get("answer")
            if isinstance(q, str) and isinstance(a, str) and a.strip():
                found.append({"kind": "qa", "text": f"Q: {q}\nA: {a}", "instruction": q, "response": a,
                              "source": "", "title": ""})
        elif obs.get("text"):  # an API this module does not know: keep its text as a passage
            found.append({"kind": "passage", "text": str(obs["text"])[:passage_chars], "instruction": None,
                          "response": None, "source": "", "title": ""})
        for f in found:
            rid = _row_id(task_id, f["kind"], f["text"])
            if rid in seen:
                continue
            seen.add(rid)
            rows.append({"id": rid, **base, **f})
    return rows


def new_rows(dataset: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    have = {r["id"] for r in dataset}
    return [r for r in rows if r["id"] not in have]


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def select_rows(rows: list[dict[str, Any]], instruction: str, budget_chars: int) -> list[dict[str, Any]]:
    """The rows most relevant to `instruction` (shared words, then dataset order) that fit the budget,
    returned in dataset order."""
    if sum(len(r["text"]) + 5 for r in rows) <= budget_chars:
        return list(rows)
    q = _words(instruction)
    ranked = sorted(range(len(rows)), key=lambda i: (-len(q & _words(rows[i]["text"])), i))
    keep, used = [], 0
    for i in ranked:
        cost = len(rows[i]["text"]) + 5
        if used + cost <= budget_chars:
            keep.append(i)
            used += cost
    return [rows[i] for i in sorted(keep)]


def render(rows: list[dict[str, Any]]) -> str:
    """The reference block the policy reads: numbered passages, then worked examples."""
    return "\n".join(f"[{i}] {r['text'].strip()}" for i, r in enumerate(rows, 1))


def as_sft_pair(row: dict[str, Any]) -> tuple[str, str]:
    """(instruction, response) for supervised fine-tuning: pairs as written, passages as text to recall."""
    if row.get("instruction") and row.get("response"):
        return row["instruction"], row["response"]
    title = row.get("title") or ""
    body = row["text"][len(title) + 2:] if title and row["text"].startswith(f"{title}: ") else row["text"]
    return (f"Tell me about {title}." if title else "Write an encyclopedia passage."), body
