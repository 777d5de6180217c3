"""Planted labelled sets for judge calibration: good items from real data, each with one bad copy.

`main.py judge-check` (ads.quality.calibration) scores these with each judge use's own judge. Per
use, built from real data by controlled corruption:

* `tool_use`: the real ToolBench queries in data/toolbench as the user's request, a call of an
  endpoint ToolBench lists as relevant to it, the offline executor's output, and a final answer
  quoting that output (good); each good conversation corrupted once (bad), in turn: the user turn
  written as the assistant with code-made parameter text (the issue's failure), a call of an
  unrelated endpoint, a final answer that ignores the results;
* `self_evolving`: real GSM8K and Wikipedia tasks (ads.generators.evolve.seeds) with their gold
  answer (good) or another task's gold answer of the same kind (bad); the same verdicts are scored
  for novelty: half the tasks are shown next to an exact copy of themselves (not novel), half next
  to tasks of other categories (novel);
* `recipe`: the encyclopedia recipe's task ("Write the opening paragraph of an encyclopedia article
  about {subject}") with the real Wikipedia extract of that subject (good) or of an article on another
  topic (bad, off-topic), scored by the shared `judge_score` judge with its default rubric (a recipe's
  own rubric is written for its own items, e.g. freediving reviews, of which the repository holds no
  real ones) at the recipe's `min_score`.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Item:
    use: str
    id: str
    label: int  # 1 good, 0 bad
    corruption: str | None  # what was done to a bad item
    payload: dict[str, Any]
    novel: bool | None = None  # self_evolving: the novelty label


# --- labelled sets ---------------------------------------------------------------------------
ASSISTANT_VOICE = "Sure, I'll do that! Could you please provide me with the {param}? ({params})"


def tool_use_items(n_good: int, seed: int = 0, paths: list[str] | None = None) -> tuple[list[Item], Any]:
    """Good conversations from the real ToolBench queries, each with one corrupted copy."""
    from ads.generators.tools.pipeline import build_all
    from ads.generators.tools.sampler import ChainPlan
    from ads.generators.tools.tool_calls import OfflineExecutor
    from ads.generators.tools.user_values import Planner

    built = build_all(paths or [str(REPO / "data" / "toolbench")], nestful=False)
    reg = built.reg
    planner = Planner(reg, built.projected, seed)
    rng = random.Random(f"calibration:tool_use:{seed}")
    examples = [ex for ex in reg.examples if any(e in reg.endpoints for e in ex.endpoint_ids)]
    rng.shuffle(examples)
    items: list[Item] = []
    kinds = ["assistant_voice", "wrong_tool", "ignored_results"]
    for k, ex in enumerate(examples[:n_good]):
        eid = next(e for e in ex.endpoint_ids if e in reg.endpoints)
        ep = reg.endpoints[eid]
        plan = ChainPlan([eid], "sequential", "sequential_multi_step", ep.category)
        args = _from_query(ex.query, ep, planner.user_values(plan, f"cal{k}").get(eid, {}))
        out = OfflineExecutor(seed).execute(ep, args).output
        good = _conversation(f"cal_tool_{k}", ex.query, ep.id, args, out, _answer(out))
        items.append(Item("tool_use", f"tool_{k}_good", 1, None, good))
        kind = kinds[k % len(kinds)]
        bad = json.loads(json.dumps(good))
        if kind == "assistant_voice":
            p = next(iter(args), "details")
            bad["messages"][0]["content"] = ASSISTANT_VOICE.format(
                param=p.replace("_", " "), params=", ".join(f"{a}={v}" for a, v in args.items()) or "query=none")
        elif kind == "wrong_tool":
            other = [e for e in reg.endpoints.values() if e.category != ep.category and e.tool_id != ep.tool_id]
            wrong = rng.choice(sorted(other, key=lambda e: e.id))
            wargs = planner.user_values(ChainPlan([wrong.id], "sequential", "x", wrong.category), f"calw{k}").get(
                wrong.id, {})
            wout = OfflineExecutor(seed).execute(wrong, wargs).output
            bad = _conversation(f"cal_tool_{k}", ex.query, wrong.id, wargs, wout, _answer(wout))
        else:
            bad["messages"][-1]["content"] = ("I could not find anything useful for this. Maybe try again later or "
                                              "search the web yourself.")
        items.append(Item("tool_use", f"tool_{k}_bad", 0, kind, bad))
    return items, built


def _from_query(query: str, ep: Any, planned: dict[str, Any]) -> dict[str, Any]:
    """The planner's values, replaced by what the real query states where it can be read off: a
    number for a numeric parameter, a quoted string or a number for an id- or code-like one. A good
    conversation should call with what the user said."""
    quoted = [a or b for a, b in re.findall(r"'([^']{1,40})'|\"([^\"]{1,40})\"", query)]
    numbers = re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", query)
    params = {p.name: p for p in ep.params}
    out = dict(planned)
    for name in planned:
        p = params.get(name)
        if p is None or p.enum:
            continue
        if p.type in ("integer", "number") and numbers:
            v = numbers.pop(0)
            out[name] = int(float(v)) if p.type == "integer" else float(v)
        elif p.type == "string" and re.search(r"(id|code|number|symbol|plate)$", name, re.I) and (quoted or numbers):
            out[name] = quoted.pop(0) if quoted else numbers.pop(0)
    return out


def _answer(out: dict[str, Any]) -> str:
    leaves = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if isinstance(v, (str, int, float)) and not isinstance(v, bool) and len(leaves) < 3:
                    leaves.append(f"{k.replace('_', ' ')} is {v}")
                else:
                    walk(v)
        elif isinstance(x, list) and x:
            walk(x[0])
    walk(out)
    return ("Here is what I found: " + "; ".join(leaves) + ".") if leaves else "The lookup returned no details."


def _conversation(cid: str, query: str, eid: str, args: dict[str, Any], out: dict[str, Any], final: str) -> dict:
    call = {"name": eid, "parameters": args}
    return {"conversation_id": cid, "messages": [
        {"role": "user", "content": query},
        {"role": "assistant", "content": "Let me check that for you.", "tool_calls": [call]},
        {"role": "tool", "name": eid, "content": json.dumps(out, ensure_ascii=False)},
        {"role": "assistant", "content": final}], "tool_calls": [call],
        "tool_outputs": [{"name": eid, "output": out}], "metadata": {}}


def self_evolving_items(n_good: int, seed: int = 0, tasks: list[dict[str, Any]] | None = None) -> list[Item]:
    """Real tasks with their gold answer (good) or a same-category task's different answer (bad)."""
    if tasks is None:
        from ads.generators.evolve.seeds import real_seed_tasks

        tasks = real_seed_tasks(per_category=max(2, -(-n_good // 4)), seed=seed)
    tasks = [t for t in tasks if t.get("reference_answer") and t["category"] != "summarization"]
    by_cat: dict[str, list[dict[str, Any]]] = {}
    for t in tasks:
        by_cat.setdefault(t["category"], []).append(t)
    rng = random.Random(f"calibration:self_evolving:{seed}")
    order = [t for t in tasks if len({str(x["reference_answer"]) for x in by_cat[t["category"]]}) > 1]
    items: list[Item] = []
    for k, t in enumerate(order[:n_good]):
        others = [x for x in by_cat[t["category"]] if str(x["reference_answer"]) != str(t["reference_answer"])]
        wrong = rng.choice(others)["reference_answer"]
        other_cats = [x for x in tasks if x["category"] != t["category"]]
        for label, answer in ((1, str(t["reference_answer"])), (0, str(wrong))):
            novel = (k + label) % 2 == 0  # alternate so both labels meet both answers
            similar = rng.sample(other_cats, min(2, len(other_cats))) if novel else [t]
            items.append(Item("self_evolving", f"task_{k}_{'good' if label else 'bad'}", label,
                              None if label else "swapped_answer",
                              {"task": t, "answer": answer, "similar": similar}, novel=novel))
    return items


RECIPE_TASK = "Write the opening paragraph of an encyclopedia article about {subject} (topic: {topic})."


def recipe_items(n_good: int, seed: int = 0, docs: list[Any] | None = None) -> list[Item]:
    """The encyclopedia recipe's task with the real extract of its subject (good) or an off-topic one (bad)."""
    if docs is None:
        from apis.corpus import load_wiki

        docs = load_wiki()
    docs = [d for d in docs if d.topic and d.topic != "Uncategorized" and 40 <= len(d.text.split())]
    rng = random.Random(f"calibration:recipe:{seed}")
    pick = rng.sample(docs, min(n_good, len(docs)))
    items: list[Item] = []
    for k, d in enumerate(pick):
        off = rng.choice([x for x in docs if x.topic != d.topic])
        ins = RECIPE_TASK.format(subject=d.title, topic=d.topic)
        items.append(Item("recipe", f"recipe_{k}_good", 1, None, {"instruction": ins, "text": _lead(d.text)}))
        items.append(Item("recipe", f"recipe_{k}_bad", 0, "off_topic", {"instruction": ins, "text": _lead(off.text)}))
    return items


def _lead(text: str, max_chars: int = 600) -> str:
    sents = re.split(r"(?<=[.!?])\s+", text.strip())
    out = ""
    for s in sents:
        if out and len(out) + len(s) > max_chars:
            break
        out = f"{out} {s}".strip()
    return out[:max_chars]
