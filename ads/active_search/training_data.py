"""The training dataset a task acquires: typed rows with provenance, deduplicated, aggregated.

Every successful observation of an executed trajectory becomes rows:
- `passage`: one per retrieved passage (its article id kept, so exports can prove which
  sources a dataset touches);
- `demonstration`: one per instruction/response pair the demonstration API wrote;
- `qa`: the question/answer pair of the question-answering API.
A row's id is the task id plus a hash of its kind and content, so the same passage fetched by
two trajectories of one task is one row, and a resumed run re-derives the same ids.

The policy update reads this dataset for every instruction of the task: in context, the few rows
most relevant to the instruction (BM25 over the rows) within a character budget, rendered in
the dataset's own order (so instructions whose selections agree get the same reference block and
llama.cpp reuses its state from one call to the next).
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

from rank_bm25 import BM25Okapi

from ads.active_search.instruction_sets import score_contains
from ads.gold_tasks import normalize
from apis.retrieval import Bm25Settings, Tokenizer

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


@lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    return Tokenizer(Bm25Settings().tokenizer)


def rank_rows(rows: list[dict[str, Any]], query: str) -> list[int]:
    """Row indices, most relevant to `query` first: BM25 over the rows themselves with the retrieval
    API's tokenizer (stopwords out, stems matched), ties and zero scores in dataset order.

    BM25 rather than a count of shared words: a count rewards long rows and common words, so a
    1000-character passage about a neighbouring topic outranked the task's own article and the
    article was cut from the prompt (README, ADS)."""
    tok = _tokenizer()
    q = tok(query)
    docs = [tok(r["text"]) for r in rows]
    if not q or not any(docs):
        return list(range(len(rows)))
    # the retrieval API's k1 and b; BM25Okapi divides by the mean length, so no empty rows
    s = Bm25Settings()
    scores = BM25Okapi([d or [""] for d in docs], k1=s.k1, b=s.b).get_scores(q)
    return sorted(range(len(rows)), key=lambda i: (-float(scores[i]), i))


def select_rows(rows: list[dict[str, Any]], query: str, budget_chars: int,
                max_rows: int | None = None) -> list[dict[str, Any]]:
    """The rows most relevant to `query` (rank_rows), at most `max_rows` of them, that fit the budget,
    returned in dataset order (so instructions whose selections agree share a prompt prefix).

    A cap on rows as well as characters because related passages distract a small policy: on the
    design-document run's held-out instructions (Qwen 0.5B) the best row alone scored 0.234 against
    0.153 for the best two and 0.118 for as many as fit 2000 characters (README, ADS)."""
    fits = sum(len(r["text"]) + 5 for r in rows) <= budget_chars
    if fits and (max_rows is None or len(rows) <= max_rows):
        return list(rows)
    order = rank_rows(rows, query)
    keep, used = [], 0
    for i in order:
        if max_rows is not None and len(keep) >= max_rows:
            break
        cost = len(rows[i]["text"]) + 5
        if used + cost <= budget_chars:
            keep.append(i)
            used += cost
    return [rows[i] for i in sorted(keep)]


# scorers whose reference is a short string an answer-bearing row quotes; a GSM8K final number or a
# topic label inside a row is no sign the row answers anything
COVERABLE_SCORERS = ("name", "number", "exact", "contains", "f1")


def answer_coverage(instructions: list[Any], rows: list[dict[str, Any]], budget_chars: int,
                    max_rows: int | None = None) -> float | None:
    """The share of the instructions whose reference answer appears (normalized, whole words) in
    the rows the policy is shown for them (select_rows); None when no instruction is coverable.

    A second reading of "does this data help", beside the score gain: a 0.5B policy often answers
    wrong from the right passage (a year from the same paragraph), so the gain on three
    instructions is 0 and the article is dropped, although held-out questions about it are
    answered from it (README, ADS)."""
    coverable = [i for i in instructions if i.gold and i.scorer in COVERABLE_SCORERS and normalize(i.gold)]
    if not coverable:
        return None
    hits = 0
    for ins in coverable:
        shown = select_rows(rows, ins.content(), budget_chars, max_rows) if rows else []
        hits += any(score_contains(r["text"], ins.gold) for r in shown)
    return hits / len(coverable)


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
