"""What the three models are asked, and the JSON shapes they must answer in.

The generator's reply is constrained by `task_schema` (a grammar on llama.cpp, a
`response_format` on OpenAI-compatible servers), and parsed again with the same schema,
because backends without grammars and truncated outputs still happen. The judge schema
is flat (`analysis`, `difficulty`, `novel`, `score_0_10`, `tags`): the model writes its
reasoning before it decides. The reasoning key is `analysis` rather than `rationale`
because the llama.cpp backend builds grammars from the schema with its keys sorted
(models/llamacpp.py), and only a key sorting before `difficulty` and `novel` comes first
there too; the stored verdict calls it `rationale`.
"""
from __future__ import annotations

import json
from typing import Any

from ads.generators.evolve.seeds import ANSWER_TYPES, DIFFICULTIES

GEN_SYSTEM = ("You design evaluation tasks for language models. A task has an instruction, which is a reusable "
              "template that never contains the data of one case, and a user_input, which is one concrete case "
              "the instruction is applied to. Reply with exactly one task as JSON.")
ANS_SYSTEM = "You are a careful assistant. Follow the instruction exactly and answer the input. Be brief."
JUDGE_SYSTEM = ("You are a strict evaluator of benchmark items. You see a TASK (instruction and input), a model's "
                "ANSWER, and EXISTING tasks already in the benchmark. Decide: is the task clear, self-contained and "
                "solvable without tools, and is the answer correct? Is the task novel, i.e. not a rewording or a "
                "trivial variation of an existing task? Reply with JSON: analysis (one or two sentences of "
                "reasoning, written first), difficulty (easy/medium/hard), novel (true/false), score_0_10 (0 = "
                "broken or useless task, 10 = excellent task with a correct answer) and tags (up to 3 short "
                "keywords).")


def task_schema(categories: list[str], instruction_max: int = 240, input_max: int = 480,
                only_category: str | None = None) -> dict[str, Any]:
    """The task JSON. `only_category` narrows the category enum to the one sampled for this
    attempt (the request); replies are checked against the full enum."""
    if only_category is not None and only_category not in categories:
        raise ValueError(f"unknown category {only_category!r}")
    return {
        "type": "object",
        "properties": {
            "instruction": {"type": "string", "minLength": 10, "maxLength": instruction_max},
            "user_input": {"type": "string", "minLength": 1, "maxLength": input_max},
            "category": {"type": "string", "enum": [only_category] if only_category else list(categories)},
            "difficulty": {"type": "string", "enum": list(DIFFICULTIES)},
            "skills_tested": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 30},
                              "minItems": 1, "maxItems": 3},
            "expected_answer_type": {"type": "string", "enum": list(ANSWER_TYPES)},
        },
        "required": ["instruction", "user_input", "category", "difficulty", "skills_tested", "expected_answer_type"],
        "additionalProperties": False,
    }


def judge_schema(rationale_max: int = 200) -> dict[str, Any]:
    """Analysis first (the model explains, then decides); the grammar writes keys in this order."""
    return {
        "type": "object",
        "properties": {
            "analysis": {"type": "string", "maxLength": rationale_max},
            "difficulty": {"type": "string", "enum": list(DIFFICULTIES)},
            "novel": {"type": "boolean"},
            "score_0_10": {"type": "integer", "minimum": 0, "maximum": 10},
            "tags": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 24}, "maxItems": 3},
        },
        "required": ["analysis", "difficulty", "novel", "score_0_10", "tags"],
        "additionalProperties": False,
    }


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + " ..."


def task_view(task: dict[str, Any], input_chars: int) -> str:
    """A pool task as the JSON the generator must write (no ids, answers or judge fields)."""
    keys = ("instruction", "user_input", "category", "difficulty", "skills_tested", "expected_answer_type")
    view = {k: task.get(k) for k in keys}
    view["user_input"] = _cut(str(view["user_input"] or ""), input_chars)
    return json.dumps(view, ensure_ascii=False)


def generation_messages(demos: list[dict[str, Any]], category: str, difficulty: str,
                        demo_chars: int = 240) -> list[dict[str, str]]:
    shots = "\n".join(f"Example {i}: {task_view(d, demo_chars)}" for i, d in enumerate(demos, 1))
    user = (f"Existing tasks:\n{shots}\n\n"
            f"Write exactly ONE new task in the category \"{category}\" with difficulty \"{difficulty}\". "
            f"It must test something different from every existing task (not a rewording and not the same "
            f"instruction with new data), be solvable without tools or the internet, and have a non-empty "
            f"user_input holding the one concrete case.")
    return [{"role": "system", "content": GEN_SYSTEM}, {"role": "user", "content": user}]


def answer_messages(task: dict[str, Any]) -> list[dict[str, str]]:
    return [{"role": "system", "content": ANS_SYSTEM},
            {"role": "user", "content": f"{task['instruction']}\n\n{task['user_input']}"}]


def judge_messages(task: dict[str, Any], answer: str, similar: list[dict[str, Any]],
                   max_chars: int = 600) -> list[dict[str, str]]:
    existing = "\n".join(f"- {_cut(s['instruction'] + ' | ' + s['user_input'], 200)}" for s in similar) or "- (none)"
    user = (f"TASK:\nInstruction: {_cut(task['instruction'], max_chars)}\nInput: {_cut(task['user_input'], max_chars)}"
            f"\nCategory: {task['category']}\n\nANSWER:\n{_cut(answer, max_chars)}\n\nEXISTING similar tasks:\n"
            f"{existing}")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]
