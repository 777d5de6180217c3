"""One conversation from one chain plan: user proxy, assistant and executor taking turns.

Who writes what:
* the planner (code, not a model; user_values.py) fixes the values the user knows and, for a
  later step, which parameters should come from an earlier step's output instead;
* the user proxy (LLM) writes the opening request mentioning those values, leaving one out
  in `clarification_first` mode, and answers the assistant's question for it;
* the assistant (LLM) writes, per step, one sentence to the user (plain text, turn_text.py) and
  then the call's arguments as schema-constrained JSON (call_arguments.py);
* the offline executor (tool_calls.py) answers each call; the assistant writes the final answer.

Small models get things wrong, and that is counted, never fatal. Text the code writes when the
model fails (a fallback sentence, the planner's values appended to the user's request, "It's
<value>.") keeps the conversation well-formed but may never pass as a model's turn:
`metadata.turn_sources` names each such turn ("fallback" or "appended"), and
`turns.TurnValidator` fails the conversation, which sends it to the repair loop. A repair either
rewrites the failing turns in place (`revise`, with the judge's and validators' feedback in the
prompt) or builds the conversation again with that feedback (`build(feedback=...)`).
"""
from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ads.generators.tools.call_arguments import CallArguments
from ads.generators.tools.graph import ProjectedGraph
from ads.generators.tools.sampler import ChainPlan
from ads.generators.tools.schema import Endpoint
from ads.generators.tools.tool_calls import OfflineExecutor, SessionMemory
from ads.generators.tools.tool_registry import ToolRegistry
from ads.generators.tools.turn_text import (OPENING_PROMPT, OPENING_SHOTS, SAY_PROMPT, SAY_SHOTS, clean_text,
                                             mentioned, short_json)
from ads.generators.tools.user_values import Planner
from models.base import Model, ModelError

log = logging.getLogger("ads.tool_use")


@dataclass
class DialogueSettings:
    temperature: float = 0.7
    retry_temperature: float = 0.9
    max_arg_attempts: int = 2
    max_tokens: int = 120  # arguments JSON
    text_max_tokens: int = 90  # a user or assistant sentence or two
    final_max_tokens: int = 140
    prompt_output_chars: int = 350


class ConversationBuilder(CallArguments):
    def __init__(self, reg: ToolRegistry, graph: ProjectedGraph, model: Model, *, user_model: Model | None = None,
                 seed: int = 0, settings: DialogueSettings | None = None):
        self.reg, self.graph = reg, graph
        self.assistant, self.user = model, user_model or model
        self.seed = seed
        self.s = settings or DialogueSettings()
        self.planner = Planner(reg, graph, seed)
        self.counts: Counter = Counter()
        self.last_source = "model"  # who wrote the last _text turn: "model" or "fallback"

    def _text(self, model: Model, system: str, user: str, sample_id: str, what: str, *, max_chars: int = 400,
              max_tokens: int | None = None, min_words: int = 3, fallback: str = "",
              shot: tuple[str, str] | None = None) -> str:
        """A free-text turn; retried at a higher temperature when nothing usable comes back.
        `shot`: one worked (request, reply) pair, which tiny models follow far better than rules."""
        msgs = [{"role": "system", "content": system}]
        if shot is not None:
            msgs += [{"role": "user", "content": shot[0]}, {"role": "assistant", "content": shot[1]}]
        msgs.append({"role": "user", "content": user})
        self.last_source = "model"
        for attempt in range(self.s.max_arg_attempts):
            self.counts["llm_calls"] += 1
            try:
                out = model.generate(msgs, max_tokens=max_tokens or self.s.text_max_tokens,
                                     temperature=self.s.temperature if attempt == 0 else self.s.retry_temperature,
                                     seed=self.seed, sample_id=f"{sample_id}:{attempt}")
            except ModelError:
                self.counts["model_errors"] += 1
                continue
            text = clean_text(out.text, max_chars, min_words)
            if text:
                return text
            self.counts[f"empty_text.{what}"] += 1
        self.counts[f"text_fallbacks.{what}"] += 1
        self.last_source = "fallback"
        return fallback

    # --- the conversation ----------------------------------------------------------------
    def _opening_inputs(self, conv_id: str, plan: ChainPlan) -> dict[str, Any]:
        eps = [self.reg.endpoints[e] for e in plan.endpoint_ids]
        values = self.planner.user_values(plan, conv_id)
        withheld = plan.clarification_param
        told = {k: v for ep in eps for k, v in values.get(ep.id, {}).items() if not (ep is eps[0] and k == withheld)}
        return {"eps": eps, "values": values, "withheld": withheld, "first_vals": values.get(eps[0].id, {}),
                "told": told, "tasks": "; then ".join(ep.description[:150].rstrip(". ") for ep in eps),
                "facts": ", ".join(f"{k} = {v}" for k, v in told.items()) or "(nothing specific)"}

    def _opening(self, conv_id: str, plan: ChainPlan, sid: str, example: str | None, feedback: str | None,
                 previous: str | None = None) -> tuple[str, str]:
        """The user's request and who wrote it ("model", "fallback", or "appended" when code had to add
        values the user did not state). `feedback` (a repair): why the last version was rejected."""
        o = self._opening_inputs(conv_id, plan)
        hint = f"\nDo not mention the {o['withheld']}; the assistant will ask for it." if o["withheld"] else ""
        style = f"\nHow real users write (different topic): \"{example[:240]}\"" if example else ""
        if feedback:
            hint += ("\nAn earlier message was rejected" + (f" (\"{previous[:200]}\")" if previous else "")
                     + f": {feedback[:400]}\nWrite it again as the person asking, not as the assistant.")
        opening = self._text(
            self.user, "You are a person chatting with an AI assistant that can look things up online. You write "
                       "in plain, natural English (never code or JSON) and never name APIs or tools.",
            OPENING_PROMPT.format(tasks=o["tasks"], facts=o["facts"], extra=hint + style),
            f"{sid}:user0", "user", shot=random.Random(f"{self.seed}:{conv_id}:shot").choice(OPENING_SHOTS),
            fallback=f"Could you help me with this: {o['eps'][0].description[:120].rstrip('.')}? ({o['facts']})")
        source = self.last_source
        missing = [f"{k}={v}" for k, v in o["told"].items() if not mentioned(v, opening)]
        if missing:  # the user must actually say what the assistant will need; code text never passes
            self.counts["user_values_appended"] += 1
            opening = opening.rstrip() + " (" + ", ".join(missing) + ")"
            source = "appended" if source == "model" else source
        withheld = o["withheld"]
        if withheld and mentioned(o["first_vals"][withheld], opening):
            self.counts["withheld_value_leaked"] += 1  # the clarification is still asked, and answered
        return opening, source

    def build(self, conv_id: str, plan: ChainPlan, attempt: int = 0, example: str | None = None,
              feedback: str | None = None) -> dict[str, Any]:
        """One whole conversation. `feedback` (a full-rewrite repair): why the previous attempt failed,
        shown to the user proxy and to the final answer's prompt."""
        sid = f"{conv_id}:a{attempt}"
        o = self._opening_inputs(conv_id, plan)
        eps, values, withheld, first_vals = o["eps"], o["values"], o["withheld"], o["first_vals"]
        opening, src = self._opening(conv_id, plan, sid, example, feedback)
        sources: dict[str, str] = {"0": src}
        messages: list[dict[str, Any]] = [{"role": "user", "content": opening}]
        user_text = opening
        n_clar = 0
        if withheld:
            p = next(x for x in eps[0].params if x.name == withheld)
            q = self._text(self.assistant, "You are a helpful assistant with tools. A detail you need is missing "
                                           "from the user's request. Ask for it in one short, polite question. "
                                           "Write only the question.",
                           f"User: {opening}\nMissing detail: {p.name} ({p.description[:100] or p.type})\n\n"
                           f"Your question:", f"{sid}:clarify", "clarify", max_chars=200, max_tokens=50,
                           fallback=f"Could you tell me the {p.name.replace('_', ' ')}?")
            sources[str(len(messages))] = self.last_source
            value = first_vals[withheld]
            ans = self._text(self.user, "You play the user. Answer the assistant's question in one short sentence "
                                        "that gives the value exactly as written. Write only the answer.",
                             f"Assistant: {q}\nThe value: {value}\n\nYour answer:", f"{sid}:answer", "answer",
                             max_chars=200, max_tokens=40, min_words=1, fallback=f"It's {value}.") \
                if isinstance(value, (str, int, float)) else f"It's {value}."
            asrc = self.last_source if isinstance(value, (str, int, float)) else "fallback"
            if not mentioned(value, ans):
                self.counts["clarification_fallbacks"] += 1
                ans = f"{ans.rstrip('.')}. It's {value}." if ans else f"It's {value}."
                asrc = "appended" if asrc == "model" else asrc
            sources[str(len(messages) + 1)] = asrc
            messages += [{"role": "assistant", "content": q}, {"role": "user", "content": ans}]
            user_text += "\n" + ans
            n_clar = 1

        ex = OfflineExecutor(self.seed)
        mem = SessionMemory()
        tool_calls, tool_outputs, lineage, warnings = [], [], [], []
        grounded_steps = 0
        groups = [list(range(len(eps)))] if plan.parallel else [[i] for i in range(len(eps))]
        for group in groups:
            cands = {i: self._candidates(mem, eps[i], i, plan) for i in group}
            for i in group:
                if i > 0 and not plan.parallel:
                    if any(cands[i].values()):
                        grounded_steps += 1
                    unresolved = [p.name for p in eps[i].required if p.name not in cands[i]
                                  and p.name not in values.get(eps[i].id, {})]
                    unresolved += [p.name for p in eps[i].required if self.planner.groundable(plan, i, p)
                                   and not cands[i].get(p.name)]
                    if unresolved:
                        self.counts["grounding_warnings"] += 1
                        msg = (f"[grounding] {conv_id}: step {i} ({eps[i].id}) has unresolvable required params: "
                               f"{sorted(set(unresolved))} — will use mock fallback")
                        log.warning(msg)
                        warnings.append({"step": i, "endpoint": eps[i].id, "params": sorted(set(unresolved))})
            say = self._say(sid, group, eps, user_text)
            say_src = self.last_source
            args_by_step = self._call_args(sid, group, eps, cands, values, user_text, tool_outputs)
            calls = [{"name": eps[i].id, "parameters": args_by_step[i]} for i in group]
            sources[str(len(messages))] = say_src
            messages.append({"role": "assistant", "content": say, "tool_calls": calls})
            for i in group:
                res = ex.execute(eps[i], args_by_step[i])
                tool_calls.append(calls[group.index(i)])
                tool_outputs.append({"name": eps[i].id, "output": res.output})
                messages.append({"role": "tool", "name": eps[i].id, "content": json.dumps(res.output, ensure_ascii=False)})
                lineage.append(self._lineage(i, eps[i], args_by_step[i], cands[i], user_text))
            for i in group:
                mem.add(i, tool_outputs[i]["output"])

        final = self._final(sid, user_text, tool_outputs, feedback)
        sources[str(len(messages))] = self.last_source
        messages.append({"role": "assistant", "content": final})
        non_first = len(eps) - 1 if not plan.parallel else 0
        tools_used = list(dict.fromkeys(e.tool_id for e in eps))
        return {
            "conversation_id": conv_id,
            "messages": messages,
            "tool_calls": tool_calls,
            "tool_outputs": tool_outputs,
            "metadata": {
                "conversation_id": conv_id, "seed": self.seed, "tool_ids_used": tools_used,
                "num_turns": len(messages), "num_clarification_questions": n_clar,
                "memory_grounding_rate": round(grounded_steps / non_first, 4) if non_first else None,
                "pattern_type": plan.pattern_type, "sampling_mode": plan.mode, "domain": plan.domain,
                "endpoint_ids": list(plan.endpoint_ids), "num_tool_calls": len(tool_calls),
                "num_distinct_tools": len(tools_used), "grounding_warnings": warnings, "lineage": lineage,
                "plan": plan.to_dict(), "attempt": attempt, "executor_errors": ex.errors,
                "turn_sources": sources,
            },
        }

    def _final(self, sid: str, user_text: str, tool_outputs: list[dict[str, Any]], feedback: str | None = None,
               previous: str | None = None) -> str:
        results = "\n".join(f"{o['name']}: {short_json(o['output'], self.s.prompt_output_chars)}" for o in tool_outputs)
        fix = ""
        if feedback:
            fix = ("\nAn earlier answer was rejected" + (f" (\"{previous[:200]}\")" if previous else "")
                   + f": {feedback[:400]}\n")
        return self._text(self.assistant, "You are a helpful assistant. Using the tool results, answer the user's "
                                          "request in two or three sentences. Quote the concrete values you found. "
                                          "Write only the answer.",
                          f"User request: {user_text}\nTool results:\n{results}\n{fix}\nYour answer:",
                          f"{sid}:final", "final", max_chars=600, max_tokens=self.s.final_max_tokens,
                          fallback="Here is what I found: " + short_json(tool_outputs[-1]["output"], 200))

    # --- surgical repair -----------------------------------------------------------------
    def revise(self, rec: dict[str, Any], targets: list[int], feedback: str, attempt: int,
               example: str | None = None) -> dict[str, Any]:
        """Rewrite only the turns in `targets` (message indexes), quoting the feedback; the tool calls,
        their outputs and every other turn stay as they were. A rewritten opening must still state every
        value the calls use, else the planner's values are appended again (and the record fails again)."""
        import copy

        from ads.generators.tools.turns import turn_kind

        rec = copy.deepcopy(rec)
        conv_id, md = rec["conversation_id"], rec["metadata"]
        plan = ChainPlan.from_dict(md["plan"])
        sid = f"{conv_id}:a{attempt}:fix"
        msgs = rec["messages"]
        sources = dict(md.get("turn_sources") or {})
        for i in targets:
            kind, old = turn_kind(msgs, i), msgs[i]["content"]
            self.counts[f"surgical_rewrites.{kind}"] += 1
            if kind == "opening":
                new, src = self._opening(conv_id, plan, f"{sid}{i}", example, feedback, previous=old)
            elif kind == "final":
                user_text = "\n".join(m["content"] for m in msgs if m["role"] == "user")
                new = self._final(f"{sid}{i}", user_text, rec["tool_outputs"], feedback, previous=old)
                src = self.last_source
            else:
                role = "the user" if kind == "answer" else "a helpful assistant that uses tools"
                before = "\n".join(f"{m['role']}: {m['content'][:200]}" for m in msgs[:i] if m["role"] != "tool")
                new = self._text(self.user if kind == "answer" else self.assistant,
                                 f"You play {role}. Rewrite one message of a conversation. Write only the new message, "
                                 "one short plain sentence, never code.",
                                 f"Conversation so far:\n{before[-600:]}\n\nRejected message: {old[:200]}\n"
                                 f"Why it was rejected: {feedback[:400]}\n\nThe new message:",
                                 f"{sid}{i}", kind, max_chars=200, max_tokens=50, min_words=1 if kind == "answer" else 3,
                                 fallback=old)
                src = self.last_source if self.last_source == "model" else sources.get(str(i), "model")
                if kind == "answer":
                    value = self._opening_inputs(conv_id, plan)["first_vals"].get(plan.clarification_param or "")
                    if value is not None and not mentioned(value, new):
                        new, src = old, sources.get(str(i), "model")  # the answer must still give the value
            msgs[i] = {**msgs[i], "content": new}
            sources[str(i)] = src
        md["turn_sources"] = sources
        md["attempt"] = attempt
        return rec

    def _say(self, sid: str, group: list[int], eps: list[Endpoint], user_text: str) -> str:
        """The assistant's sentence before a call: short prompt, plain text, cheap."""
        what = " and ".join(eps[i].description[:100].rstrip(". ") for i in group)
        fallback = "Let me look that up." if len(group) == 1 else "Let me run these lookups at the same time."
        return self._text(self.assistant, "You are a helpful assistant that uses tools. Tell the user in one short, "
                                          "plain sentence what you will do next. Write only that sentence.",
                          SAY_PROMPT.format(user=user_text[:400], what=what), f"{sid}:say{group[0]}", "say",
                          max_chars=200, max_tokens=40, fallback=fallback,
                          shot=random.Random(f"{sid}:say{group[0]}").choice(SAY_SHOTS))

