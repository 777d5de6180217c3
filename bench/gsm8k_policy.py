"""Why GSM8K tasks gain nothing in ADS: what the policy solves with each kind of context.

The ADS policy answers a GSM8K instruction with `loop.reasoning_max_tokens` tokens. This probe
asks the real policy model (greedy, the ADS policy prompt) to solve the first N GSM8K problems
on the training side of the split, at each answer budget, with:
  none          no context (what no_data sees);
  similar       the most similar other problem's worked solution (BM25 over problems that are
                neither probed nor on the held-out side): the best a data search could bring;
  own           the problem's own worked solution (what the oracle sees);
  short_prompt  no context, the instruction asking for short lines and the number last;
and prints the number solved of N with a Wilson 95% interval, and the mean answer length.

    .venv/bin/python bench/gsm8k_policy.py                                   # Qwen, 12 problems, 160 and 384 tokens
    .venv/bin/python bench/gsm8k_policy.py --model smollm2-135m --n 24 --budgets 160
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ads.active_search.instruction_sets import Instruction  # noqa: E402
from ads.active_search.policy import Policy  # noqa: E402
from ads.active_search.significance import wilson_interval  # noqa: E402
from ads.downstream.evalset import gsm8k_prompt, gsm8k_rows, is_heldout  # noqa: E402
from apis.retrieval import Tokenizer  # noqa: E402
from models.model_config import ModelConfig  # noqa: E402
from models.registry import load  # noqa: E402

SHORT = "Solve the problem in a few short lines, no explanations. Put the final number last.\n{q}"


def worked(r: dict[str, str]) -> str:
    return f"Problem: {r['question']}\nWorked solution: {r['solution']} The answer is {r['answer']}."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--budgets", default="160,384", help="answer token budgets, comma-separated")
    args = ap.parse_args()
    from rank_bm25 import BM25Okapi

    rows = [r for r in gsm8k_rows() if not is_heldout(r["source"])]
    probe, pool = rows[:args.n], rows[max(200, args.n):]
    tok = Tokenizer()
    bm25 = BM25Okapi([tok(r["question"]) or [""] for r in pool])
    model = load(ModelConfig(name=args.model, n_ctx=2048), models_dir=str(ROOT / "cache" / "models"))
    print(f"{args.model}: {len(probe)} GSM8K problems (training side), similar solutions from {len(pool)} others")
    for budget in (int(b) for b in args.budgets.split(",")):
        policy = Policy(model, seed=0, answer_max_tokens=24, reasoning_max_tokens=budget, context_chars=2000)
        solved: dict[str, list[float]] = {}
        chars: dict[str, list[int]] = {}
        t0 = time.perf_counter()
        for r in probe:
            scores = bm25.get_scores(tok(r["question"]))
            nearest = pool[max(range(len(pool)), key=lambda i: scores[i])]
            task_prompt = gsm8k_prompt(r["question"])  # the ADS task's instruction text
            cases = {"none": (task_prompt, ""), "similar": (task_prompt, worked(nearest)),
                     "own": (task_prompt, f"Worked solution: {r['solution']} The answer is {r['answer']}."),
                     "short_prompt": (SHORT.format(q=r["question"]), "")}
            for name, (prompt, context) in cases.items():
                ins = Instruction(id=r["source"], prompt=prompt, gold=r["answer"], scorer="math", source=r["source"])
                a = policy.answer(ins, context=context)
                solved.setdefault(name, []).append(a.score)
                chars.setdefault(name, []).append(len(a.text))
        print(f"\nanswer budget {budget} tokens ({time.perf_counter() - t0:.0f} s)")
        print(f"{'context':<14}{'solved':>8}  {'Wilson 95%':<16}{'answer chars':>12}")
        for name, s in solved.items():
            lo, hi = wilson_interval(int(sum(s)), len(s))
            print(f"{name:<14}{int(sum(s)):>4}/{len(s):<3}  [{lo:.2f}, {hi:.2f}]    {sum(chars[name]) / len(s):>10.0f}")


if __name__ == "__main__":
    main()
