"""One attempt of the self-evolving loop: from "what to ask for" to one event.

`attempt(env, n)` asks the generator for one task, runs the free checks and the cheap novelty
filters, and only then pays for an answer and a judgment; it returns the attempt's event
(accepted, rejected with its stage and reason, or a model error). It reads the loop's state
(pool, novelty memories, EMAs) from `env` and changes none of it: whether and how the result
joins the benchmark is the generator's commit, in the driver, so attempt n always sees exactly
the attempts before it. Attempt n draws from its own random stream and sends request ids that
name n, which is what lets a resumed run repeat it from the request cache.

`attempt_work` is the contract's work function: the attempt tagged in the ledger with its
round, and a `run_aborted` line in the event log when the endpoint is down for good.
"""
from __future__ import annotations

import random
import time
from typing import Any

from ads.generators.evolve.curriculum import pick_demos, pick_difficulty, sample_category
from ads.generators.evolve.prompts import answer_messages, generation_messages
from ads.ledger import ledger_scope
from models.base import ModelError
from models.errors import FatalModelError
from models.structured import parse_json


def item_text(task: dict[str, Any]) -> str:
    """What novelty compares: the template and its instance together."""
    return f"{task['instruction']}\n{task['user_input']}"


def attempt(env: Any, n: int) -> dict[str, Any]:
    cfg = env.cfg
    rng = random.Random(f"{cfg.seed}:{n}")
    cat = sample_category(env.pool_counts, env.categories, rng, cfg.category_power)
    ema_c = env.ema.get(cat, env.ema.value)
    acc_c = env.accept_ema.get(cat)
    diff = pick_difficulty(ema_c, env.easy_below, cfg.hard_above, acc_c, cfg.easy_accept_below)
    demos = pick_demos(env.pool, cat, cfg.demo_k, rng)
    ev: dict[str, Any] = {"id": f"attempt-{n:05d}", "attempt": n, "round": n // cfg.round_size,
                          "target_category": cat, "target_difficulty": diff, "ema_used": ema_c,
                          "acceptance_ema_used": acc_c,
                          "demo_ids": [d["id"] for d in demos], "created_at": time.time()}

    def reject(stage: str, reason: str, **extra: Any) -> dict[str, Any]:
        return {**ev, "outcome": "error" if reason.endswith("_error") else "rejected", "stage": stage,
                "reason": reason, **extra}

    try:
        out = env.gen.generate(generation_messages(demos, cat, diff), max_tokens=cfg.gen_max_tokens,
                               temperature=cfg.gen_temp, seed=cfg.seed, sample_id=f"gen:{n}",
                               json_schema=env.target_schemas[cat])
    except ModelError as e:
        return reject("generate", "generator_error", detail=str(e)[:300])
    task, err = parse_json(out.text, env.schema)
    if err is not None:
        cut = " (output cut at gen_max_tokens)" if out.finish_reason == "length" else ""
        return reject("parse", "malformed_task", detail=err + cut, raw=out.text[:600])
    task["instruction"], task["user_input"] = task["instruction"].strip(), task["user_input"].strip()
    ev["task"] = task
    if not task["user_input"]:
        return reject("check", "empty_user_input")
    if not task["instruction"]:
        return reject("check", "empty_instruction")
    if len(task["user_input"]) >= 20 and task["user_input"].lower() in task["instruction"].lower():
        return reject("check", "instance_in_instruction")
    vr = env.validators.run(task, item_id=ev["id"])
    if not vr.passed:
        return reject("validate", f"validator:{vr.failed[0]}", detail=vr.reasons)
    if env.instr_novelty is not None:
        ni = env.instr_novelty.check(task["instruction"])
        ev["instruction_max_similarity"], ev["instruction_nearest_id"] = ni.max_sim, ni.nearest_id
        if not ni.is_novel:
            return reject("novelty", "reused_instruction")
    text = item_text(task)
    nov = env.novelty.check(text)
    ev["heuristic_max_similarity"], ev["heuristic_nearest_id"] = nov.max_sim, nov.nearest_id
    if not nov.is_novel:
        return reject("novelty", "near_duplicate")
    try:
        a = env.ans.generate(answer_messages(task), max_tokens=cfg.ans_max_tokens, temperature=cfg.ans_temp,
                             seed=cfg.seed, sample_id=f"ans:{n}")
    except ModelError as e:
        return reject("answer", "answerer_error", detail=str(e)[:300])
    answer = a.text.strip()
    ev["answer"] = answer
    if not answer:
        return reject("answer", "empty_answer")
    similar = env.similar(text, cfg.similar_k)
    v = env.judge.evaluate(task, answer, similar, seed=cfg.seed, sample_id=f"judge:{n}")
    ev["judge"] = v.to_dict()
    if not v.ok:
        return reject("judge", "judge_error" if v.model_error else "judge_malformed", detail=v.error)
    if not v.novel and cfg.judge_novelty_veto:
        return reject("judge", "judge_not_novel", score_0_10=v.score)
    if v.score < cfg.min_score:
        return reject("judge", "low_score", score_0_10=v.score)
    return {**ev, "outcome": "accepted", "stage": "accept", "reason": None, "score_0_10": v.score,
            "similar_ids": [s["id"] for s in similar]}


class _AbortLine:
    """Writes `run_aborted` to the event log when the block ends in a FatalModelError (every later
    call would fail the same way), and lets the error go on: the runner stops the run on it."""

    def __init__(self, logs: Any, n: int):
        self.logs, self.n = logs, n

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: Any, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, FatalModelError):
            self.logs.append({"id": f"abort-{self.n:05d}", "event": "run_aborted", "at_attempt": self.n,
                              "reason": "endpoint_failing", "detail": str(exc)[:300], "created_at": time.time()})
        return False


def attempt_work(env: Any, n: int) -> dict[str, Any]:
    with ledger_scope(iteration=n // env.cfg.round_size, task_id=f"attempt-{n}"), _AbortLine(env.logs, n):
        return attempt(env, n)
