"""One conversation from one chain plan: user proxy, assistant and executor taking turns.

Who writes what:
* the planner (code, not a model) fixes the values the user knows (a parameter's documented
  default, else a mock value) and, for a later step, which parameters should come from an
  earlier step's output instead;
* the user proxy (LLM) writes the opening request mentioning those values, leaving one out
  in `clarification_first` mode, and answers the assistant's question for it;
* the assistant (LLM) writes, per step, one sentence to the user and then the call's arguments
  as JSON constrained by the endpoint's parameter schema; a parameter an earlier output can
  fill is constrained to the values that output holds (so grounding is enforced, not hoped for);
* the offline executor answers each call; the assistant (LLM) writes the final answer.

Only the arguments are grammar-constrained. llama.cpp applies a grammar to the whole
vocabulary at every token, which made a constrained token about twice as dear as a free one on 2 CPU cores
(bench/bench_bandit_decoding.py; docs/bandit.md), so the prose turns are plain text, cleaned and checked here
(role labels, stray JSON and run-on continuations are cut; an empty or one-word reply is a
rejection), and string arguments carry no `maxLength` (a bounded repetition multiplies the
grammar's cost again); `max_tokens` bounds them instead.

Small models get things wrong, and that is counted, never fatal: an unparseable reply, an
argument that breaks the schema, or a user-known value the model did not copy from the user's
words is a rejection; the assistant is asked again with the error (a repair attempt), and after
`max_arg_attempts` the planner's values fill the gap (`arg_fallbacks`).

Text the code writes when the model fails (a fallback sentence, the planner's values appended to
the user's request, "It's <value>.") keeps the conversation well-formed but may never pass as a
model's turn: `metadata.turn_sources` names each such turn ("fallback" or "appended"), and
`turns.TurnValidator` fails the conversation, which sends it to the repair loop. A repair either
rewrites the failing turns in place (`revise`, with the judge's and validators' feedback in the
prompt) or builds the conversation again with that feedback (`build(feedback=...)`).
"""
from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ads.generators.tools.executor import Grounding, OfflineExecutor, SessionMemory, mock_value
from ads.generators.tools.graph import ProjectedGraph
from ads.generators.tools.registry import ToolRegistry
from ads.generators.tools.sampler import ChainPlan
from ads.generators.tools.schema import Endpoint, Param
from models.base import Model, ModelError
from models.structured import extract_json, parse_json

log = logging.getLogger("ads.tool_use")
MAX_ENUM = 6


@dataclass
class DialogueSettings:
    temperature: float = 0.7
    retry_temperature: float = 0.9
    max_arg_attempts: int = 2
    max_tokens: int = 120  # arguments JSON
    text_max_tokens: int = 90  # a user or assistant sentence or two
    final_max_tokens: int = 140
    prompt_output_chars: int = 350


_LABEL = re.compile(r"^\s*(\*\*)?(user|assistant|message|question|reply|answer|response|ai|me)(\*\*)?\s*:\s*(\*\*)?\s*",
                    re.I)
_TURN = re.compile(r"\n\s*(\*\*)?(user|assistant|system|tool)(\*\*)?\s*:", re.I)


_CODE = re.compile(r"^\s*(python|json|sql|bash|javascript)\s*$|^\s*(def |class |import |from \w+ import |return |"
                   r"for \w+ in |print\()", re.I | re.M)
_JSONISH = re.compile(r"[{\[]\s*[\"']\w")
_PREAMBLE = re.compile(r"^(sure|certainly|of course|okay|ok|here'?s|here is|here are)\b", re.I)


def clean_text(text: str, max_chars: int = 400, min_words: int = 3) -> str:
    """A model's free-text turn, trimmed to the turn itself; "" when nothing usable is left.

    Small models prefix a role label or a preamble ("Sure! Here's the message:"), wrap the reply
    in quotes or in a JSON object, and run on into the other side's next turn; all of that is
    cut, never repaired by inventing words. Line breaks inside the turn (a list of results) stay.
    """
    t = (text or "").strip()
    if t.startswith("{"):
        obj, _ = extract_json(t)
        if isinstance(obj, dict):
            t = next((v for v in obj.values() if isinstance(v, str) and v.strip()), "")
    t = _TURN.split("\n" + _LABEL.sub("", t), maxsplit=1)[0]
    t = t.replace("```", "\n")
    lines = [" ".join(x.split()) for x in t.splitlines()]
    lines = [x for x in lines if x]
    while len(lines) > 1 and (lines[0].endswith(":") or (_PREAMBLE.match(lines[0]) and len(lines[0]) < 90)):
        lines.pop(0)  # "Sure, here is the message:" followed by the message
    lines = [_LABEL.sub("", x) for x in lines]
    t = "\n".join(x for x in lines if x).strip().strip('"').strip()
    if len(t) > max_chars:
        cut = t[:max_chars]
        end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "), cut.rfind("\n"))
        t = cut[: end + 1].strip() if end > max_chars // 3 else cut.rsplit(" ", 1)[0] + "..."
    if _JSONISH.search(t) or _CODE.search(t):  # JSON or code is not prose
        return ""
    return t if len(t.split()) >= min_words else ""


OPENING_PROMPT = ("You want the assistant to: {tasks}.\nDetails you know: {facts}.{extra}\n\nWrite your message to the "
                  "assistant (one or two sentences, first person, include the details exactly):")
# One worked example per request, drawn per conversation from several topics: a 135M model copies
# the topic of the example it is shown, so a single fixed example would put it in every opening.
OPENING_SHOTS = [
    (OPENING_PROMPT.format(tasks=t, facts=f, extra=""), reply) for t, f, reply in [
        ("Get the weather forecast for a city; then search hotels near a location", "city = Lisbon, nights = 3",
         "Hi! I'm heading to Lisbon soon - could you check the weather forecast there and then find me a hotel "
         "nearby for 3 nights?"),
        ("Look up an order by its id; then track the shipment of an order", "order_id = ORD-5521",
         "My order ORD-5521 still hasn't arrived. Can you look it up and tell me where the package is?"),
        ("Search recipes by ingredient; then get the nutrition facts of a recipe", "ingredient = lentils",
         "I have a bag of lentils to use up. Could you find me a recipe with them and tell me how healthy it is?"),
        ("Get the latest price of a stock; then get news about a company", "symbol = NVDA",
         "How is NVDA trading right now? Also, is there any recent news about the company?"),
        ("Find songs by an artist; then get the lyrics of a song", "artist = Adele",
         "I'm in an Adele mood today. Which songs of hers are popular, and can you show me the lyrics of one?"),
        ("List football matches on a date; then get the odds for a match", "date = 2025-05-10",
         "Which football matches are on 2025-05-10? I'd also like the betting odds for one of them."),
    ]]
SAY_PROMPT = "User: {user}\nWhat you will do next: {what}\n\nYour sentence:"
SAY_SHOTS = [(SAY_PROMPT.format(user=u, what=w), reply) for u, w, reply in [
    ("Could you check the weather in Lisbon and find me a hotel there for 3 nights?",
     "Get the weather forecast for a city", "Sure - first I'll check the forecast for Lisbon."),
    ("My order ORD-5521 still hasn't arrived. Where is it?", "Look up an order by its id",
     "Let me pull up order ORD-5521 first."),
    ("How is NVDA trading right now, and is there news about it?", "Get the latest price of a stock",
     "I'll start by getting the current NVDA price."),
]]


def describe(ep: Endpoint, params: bool = True) -> str:
    line = f"{ep.id}: {ep.description[:180]}"
    if params and ep.params:
        ps = []
        for p in ep.params[:10]:
            extra = f" e.g. {p.default}" if p.default not in (None, "") else ""
            ps.append(f"  - {p.name} ({p.type}{', required' if p.required else ''}): {p.description[:90]}{extra}")
        line += "\n" + "\n".join(ps)
    return line


def _short(obj: Any, n: int) -> str:
    s = json.dumps(obj, ensure_ascii=False, default=str)
    return s if len(s) <= n else s[:n] + "...}"


def _mentioned(value: Any, text: str) -> bool:
    t = text.lower()
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return str(value) in t or (float(value).is_integer() and str(int(value)) in t)
    if isinstance(value, list):
        return all(_mentioned(v, text) for v in value)
    return str(value).strip().lower() in t


class Planner:
    """Decides the values a user would know, and which parameters later steps ground."""

    def __init__(self, reg: ToolRegistry, graph: ProjectedGraph, seed: int):
        self.reg, self.graph, self.seed = reg, graph, seed

    def groundable(self, plan: ChainPlan, step: int, param: Param) -> bool:
        if plan.parallel or step == 0:
            return False
        for prev in plan.endpoint_ids[:step]:
            e = self.graph.edge(prev, plan.endpoint_ids[step])
            if e is not None and any(p == param.name for _, p in e.links):
                return True
        return False

    def user_values(self, plan: ChainPlan, conv_id: str) -> dict[str, dict[str, Any]]:
        """{endpoint_id: {param: value}} for required parameters no earlier output can fill.

        One user has one value per thing: two steps that both take `stateIsoCode` get the same
        value (when its type and allowed values fit both), so the opening request can state it once."""
        out: dict[str, dict[str, Any]] = {}
        known: dict[str, Any] = {}
        for step, eid in enumerate(plan.endpoint_ids):
            ep = self.reg.endpoints[eid]
            for p in ep.required:
                if self.groundable(plan, step, p):
                    continue
                prev = known.get(p.name)
                if p.name in known and _type_ok(prev, p.type) and (not p.enum or prev in p.enum):
                    out.setdefault(eid, {})[p.name] = prev
                    continue
                rng = random.Random(f"{self.seed}:{conv_id}:{eid}:{p.name}")
                if p.enum:
                    v: Any = rng.choice(p.enum)
                elif p.default is not None and _type_ok(p.default, p.type):
                    v = p.default
                else:
                    v = mock_value(p.name, p.json_schema() if p.type != "array" else {"type": "string"}, rng, {})
                    if p.type == "array":
                        v = [v]
                known.setdefault(p.name, v)
                out.setdefault(eid, {})[p.name] = v
        return out


def _type_ok(v: Any, t: str) -> bool:
    return {"string": isinstance(v, str), "integer": isinstance(v, int) and not isinstance(v, bool),
            "number": isinstance(v, (int, float)) and not isinstance(v, bool), "boolean": isinstance(v, bool),
            "array": isinstance(v, list), "object": isinstance(v, dict)}.get(t, False)


class ConversationBuilder:
    def __init__(self, reg: ToolRegistry, graph: ProjectedGraph, model: Model, *, user_model: Model | None = None,
                 seed: int = 0, settings: DialogueSettings | None = None):
        self.reg, self.graph = reg, graph
        self.assistant, self.user = model, user_model or model
        self.seed = seed
        self.s = settings or DialogueSettings()
        self.planner = Planner(reg, graph, seed)
        self.counts: Counter = Counter()
        self.last_source = "model"  # who wrote the last _text turn: "model" or "fallback"

    # --- model calls ---------------------------------------------------------------------
    def _ask(self, model: Model, messages: list[dict], schema: dict[str, Any], sample_id: str, what: str,
             temperature: float | None = None, max_tokens: int | None = None) -> tuple[Any, str | None]:
        self.counts["llm_calls"] += 1
        try:
            out = model.generate(messages, max_tokens=max_tokens or self.s.max_tokens,
                                 temperature=self.s.temperature if temperature is None else temperature,
                                 seed=self.seed, sample_id=sample_id, json_schema=schema)
        except ModelError as e:
            self.counts["model_errors"] += 1
            return None, f"model error: {e}"
        obj, err = parse_json(out.text, schema)
        if err is not None:
            self.counts[f"parse_failures.{what}"] += 1
            if out.finish_reason == "length":
                err += " (cut at max_tokens)"
        return obj, err

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
        missing = [f"{k}={v}" for k, v in o["told"].items() if not _mentioned(v, opening)]
        if missing:  # the user must actually say what the assistant will need; code text never passes
            self.counts["user_values_appended"] += 1
            opening = opening.rstrip() + " (" + ", ".join(missing) + ")"
            source = "appended" if source == "model" else source
        withheld = o["withheld"]
        if withheld and _mentioned(o["first_vals"][withheld], opening):
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
            if not _mentioned(value, ans):
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
        results = "\n".join(f"{o['name']}: {_short(o['output'], self.s.prompt_output_chars)}" for o in tool_outputs)
        fix = ""
        if feedback:
            fix = ("\nAn earlier answer was rejected" + (f" (\"{previous[:200]}\")" if previous else "")
                   + f": {feedback[:400]}\n")
        return self._text(self.assistant, "You are a helpful assistant. Using the tool results, answer the user's "
                                          "request in two or three sentences. Quote the concrete values you found. "
                                          "Write only the answer.",
                          f"User request: {user_text}\nTool results:\n{results}\n{fix}\nYour answer:",
                          f"{sid}:final", "final", max_chars=600, max_tokens=self.s.final_max_tokens,
                          fallback="Here is what I found: " + _short(tool_outputs[-1]["output"], 200))

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
                    if value is not None and not _mentioned(value, new):
                        new, src = old, sources.get(str(i), "model")  # the answer must still give the value
            msgs[i] = {**msgs[i], "content": new}
            sources[str(i)] = src
        md["turn_sources"] = sources
        md["attempt"] = attempt
        return rec

    def _candidates(self, mem: SessionMemory, ep: Endpoint, step: int, plan: ChainPlan) -> dict[str, list[Grounding]]:
        if step == 0 or plan.parallel:
            return {}
        out = {}
        for p in ep.params:
            if p.type not in ("string", "integer", "number"):
                continue
            c = mem.candidates(p.name, p.type)
            if c:
                out[p.name] = c[:MAX_ENUM]
        return out

    def _args_schema(self, ep: Endpoint, cands: dict[str, list[Grounding]]) -> dict[str, Any]:
        s = ep.arguments_schema()
        for name, cs in cands.items():
            s["properties"][name] = {"enum": [c.value for c in cs]}
        return s

    def _say(self, sid: str, group: list[int], eps: list[Endpoint], user_text: str) -> str:
        """The assistant's sentence before a call: short prompt, plain text, cheap."""
        what = " and ".join(eps[i].description[:100].rstrip(". ") for i in group)
        fallback = "Let me look that up." if len(group) == 1 else "Let me run these lookups at the same time."
        return self._text(self.assistant, "You are a helpful assistant that uses tools. Tell the user in one short, "
                                          "plain sentence what you will do next. Write only that sentence.",
                          SAY_PROMPT.format(user=user_text[:400], what=what), f"{sid}:say{group[0]}", "say",
                          max_chars=200, max_tokens=40, fallback=fallback,
                          shot=random.Random(f"{sid}:say{group[0]}").choice(SAY_SHOTS))

    def _call_args(self, sid: str, group: list[int], eps: list[Endpoint], cands: dict[int, dict[str, list[Grounding]]],
                   values: dict[str, dict[str, Any]], user_text: str,
                   outputs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        keys = {i: f"call_{k + 1}" for k, i in enumerate(group)}
        if len(group) == 1:
            props: dict[str, Any] = {"arguments": self._args_schema(eps[group[0]], cands[group[0]])}
        else:
            props = {"calls": {"type": "object", "additionalProperties": False, "required": list(keys.values()),
                               "properties": {keys[i]: self._args_schema(eps[i], cands[i]) for i in group}}}
        schema = {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}
        earlier = "\n".join(f"step {k}: {o['name']} -> {_short(o['output'], self.s.prompt_output_chars)}"
                            for k, o in enumerate(outputs)) or "(none yet)"
        tools = "\n".join(f"{keys[i]}: {describe(eps[i])}" for i in group)
        ground = "; ".join(f"{p} from step {c[0].step} ({c[0].field})" for i in group for p, c in cands[i].items())
        shape = '{"arguments": {...}}' if len(group) == 1 else \
            '{"calls": {' + ", ".join(f'"{k}": {{...}}' for k in keys.values()) + "}}"
        prompt = (f"Conversation so far (user):\n{user_text}\n\nEarlier tool results:\n{earlier}\n\n"
                  f"Call now{' (all at once, in parallel)' if len(group) > 1 else ''}:\n{tools}\n"
                  + (f"Take these from earlier results: {ground}\n" if ground else "")
                  + f"Reply as JSON: {shape}")
        msgs = [{"role": "system", "content": "You are an assistant that calls tools. Fill the arguments with values "
                                              "the user gave or earlier results returned; never invent ids."},
                {"role": "user", "content": prompt}]
        last: dict[int, dict[str, Any]] = {}
        for attempt in range(self.s.max_arg_attempts):
            obj, err = self._ask(self.assistant, msgs, schema, f"{sid}:call{group[0]}:{attempt}", "arguments",
                                 temperature=None if attempt == 0 else self.s.retry_temperature)
            problems = []
            if obj is None:
                problems.append(err or "no JSON")
                self.counts["arg_schema_rejections"] += 1
            else:
                got = {i: (obj["arguments"] if len(group) == 1 else obj["calls"][keys[i]]) for i in group}
                last = got
                for i in group:
                    for p, v in values.get(eps[i].id, {}).items():
                        if p in got[i] and not _mentioned(got[i][p], user_text) and got[i][p] != v:
                            problems.append(f"{keys[i]}.{p}={got[i][p]!r} is not what the user said ({v!r})")
                if problems:
                    self.counts["ungrounded_arg_rejections"] += 1
            if not problems:
                return last
            if attempt + 1 < self.s.max_arg_attempts:
                self.counts["arg_repairs"] += 1
                msgs = msgs + [{"role": "assistant", "content": json.dumps(obj) if obj else "(invalid)"},
                               {"role": "user", "content": "Fix these problems and reply again: " + "; ".join(problems)}]
        self.counts["arg_fallbacks"] += 1
        return {i: self._fallback(eps[i], last.get(i, {}), cands[i], values.get(eps[i].id, {}), user_text)
                for i in group}

    def _fallback(self, ep: Endpoint, got: dict[str, Any], cands: dict[str, list[Grounding]],
                  vals: dict[str, Any], user_text: str) -> dict[str, Any]:
        """Keep what the model wrote that is valid and grounded; fill the rest from the plan."""
        from jsonschema import Draft202012Validator

        out = {}
        for p in ep.params:
            if p.name in vals:
                out[p.name] = vals[p.name]
            elif p.name in cands:
                out[p.name] = cands[p.name][0].value
            elif p.name in got and Draft202012Validator(p.json_schema()).is_valid(got[p.name]):
                out[p.name] = got[p.name]
            elif p.required:
                out[p.name] = mock_value(p.name, p.json_schema() if p.type != "array" else {"type": "string"},
                                         random.Random(f"{self.seed}:{ep.id}:{p.name}"), {})
                if p.type == "array":
                    out[p.name] = [out[p.name]]
        return out

    def _lineage(self, step: int, ep: Endpoint, args: dict[str, Any], cands: dict[str, list[Grounding]],
                 user_text: str) -> dict[str, Any]:
        rows = []
        for k, v in args.items():
            hit = next((c for c in cands.get(k, []) if c.value == v), None)
            if hit is not None:
                rows.append({"param": k, "value": v, "source": "tool_output", "from_step": hit.step,
                             "field": hit.field, "path": hit.path})
            elif _mentioned(v, user_text):
                rows.append({"param": k, "value": v, "source": "user"})
            else:
                rows.append({"param": k, "value": v, "source": "model"})
        return {"step": step, "endpoint": ep.id, "arguments": rows}
