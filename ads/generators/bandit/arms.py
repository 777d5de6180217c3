"""Arms: one generation strategy at one sampling setting.

Two families, each at the profiles of the config (conservative / balanced / creative
temperatures by default):

* `naive` (direct LLM): the model writes the whole item from a prompt built from the
  extracted context. When the only field the model writes is `text`, it writes plain prose
  (`output: text`), because JSON decoding under a grammar costs small CPU models 2x or more
  and adds nothing to a single string; otherwise it writes one JSON object constrained by
  the recipe's output schema (`output: json`);
* `templater` (PCFG): a template is sampled from the recipe's grammar and the model only
  fills its slots, as JSON constrained by the schema derived from that template (or the
  recipe's explicit one); the text is the rendered template.

Both return an `Attempt`. A malformed reply (no JSON, schema violation, nothing left after a
cut at max_tokens) or a backend `ModelError` is an Attempt with `error` set: a counted
rejection, never an exception.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ads.generators.bandit.pcfg import render, slots_of
from ads.generators.bandit.recipe import Context, decoding_schema, strip_descriptions
from models.base import Completion, Model, ModelError
from models.structured import parse_json

SYSTEM_TEXT = "You write one item for a dataset. Follow the instructions and write only the item itself."
SYSTEM_JSON = "You write one item for a dataset. Reply with one JSON object and nothing else."
_LABEL = re.compile(r"^\s*(?:text|paragraph|answer|review|item|output)\s*:\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?(?=\s|$)")


@dataclass
class Attempt:
    record: dict[str, Any] | None
    error: str | None
    raw: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


def item_rng(seed: int, item_id: str) -> random.Random:
    """Per-item randomness (facets, grammar expansion) that a resumed run reproduces exactly."""
    return random.Random(f"{seed}:{item_id}")


def instruction(ctx: Context, facets: dict[str, str]) -> list[str]:
    """The task with its facets filled in, then the facets it does not name, then the rules."""
    named = set(slots_of(ctx.task))
    lines = [render(ctx.task, facets, keep_missing=True), f"Domain: {ctx.domain}."]
    lines += [f"{k.replace('_', ' ').capitalize()}: {v}." for k, v in facets.items() if k not in named]
    rules = ctx.constraints + ctx.requirements
    if rules:
        lines.append("Rules:")
        lines += [f"- {render(r, facets, keep_missing=True)}" for r in rules]
    return lines


def clean_text(raw: str, cut: bool) -> tuple[str | None, str | None]:
    """(text, error) from a plain-prose reply: quotes and a leading label such as "Text:" go;
    a reply cut at max_tokens keeps its complete sentences only."""
    t = _LABEL.sub("", raw.strip()).strip().strip("`").strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
        t = t[1:-1].strip()
    if cut:
        ends = list(_SENTENCE_END.finditer(t))
        if not ends:
            return None, "cut at max_tokens before the first sentence ended"
        t = t[:ends[-1].end()]
    if not t:
        return None, "empty reply"
    return t, None


@dataclass
class Arm:
    name: str  # "<family>:<profile>"
    family: Literal["naive", "templater"]
    profile: str
    temperature: float
    output: Literal["text", "json"] = "json"  # naive arms only

    def generate(self, model: Model, ctx: Context, item_id: str, *, seed: int, max_tokens: int) -> Attempt:
        rng = item_rng(seed, item_id)
        facets = ctx.draw_facets(rng)
        if self.family == "templater":
            att = self._templater(model, ctx, item_id, facets, rng, seed, max_tokens)
        elif self.output == "text":
            att = self._naive_text(model, ctx, item_id, facets, seed, max_tokens)
        else:
            att = self._naive_json(model, ctx, item_id, facets, seed, max_tokens)
        att.meta = {"facets": facets, **att.meta}
        return att

    def _complete(self, model: Model, system: str, lines: list[str], item_id: str, seed: int, max_tokens: int,
                  schema: dict[str, Any] | None) -> Completion | Attempt:
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]
        try:
            return model.generate(msgs, max_tokens=max_tokens, temperature=self.temperature, seed=seed,
                                  sample_id=f"{self.name}:{item_id}",
                                  json_schema=decoding_schema(schema) if schema is not None else None)
        except ModelError as e:
            return Attempt(None, f"model error: {e}")

    def _json(self, model: Model, lines: list[str], schema: dict[str, Any], item_id: str, seed: int,
              max_tokens: int) -> tuple[Any, Attempt]:
        out = self._complete(model, SYSTEM_JSON, lines, item_id, seed, max_tokens, schema)
        if isinstance(out, Attempt):
            return None, out
        obj, err = parse_json(out.text, strip_descriptions(schema))  # the full schema: integer bounds included
        if err is not None and out.finish_reason == "length":
            err += f" (cut at max_tokens={max_tokens})"
        return obj, Attempt(None, err, out.text, out.prompt_tokens, out.completion_tokens, out.latency_s)

    def _naive_text(self, model: Model, ctx: Context, item_id: str, facets: dict[str, str], seed: int,
                    max_tokens: int) -> Attempt:
        lines = instruction(ctx, facets)
        what = ctx.field_notes.get("text") or "text"
        lines.append(f"Write only the {what}: no title, no introduction, no notes.")
        out = self._complete(model, SYSTEM_TEXT, lines, item_id, seed, max_tokens, None)
        if isinstance(out, Attempt):
            return out
        text, err = clean_text(out.text, out.finish_reason == "length")
        att = Attempt(None, err, out.text, out.prompt_tokens, out.completion_tokens, out.latency_s)
        if err is None:
            # the same checks a JSON reply gets: type and length bounds of the `text` field
            _, att.error = parse_json(json.dumps({"text": text}), _text_only(ctx.output_schema))
        if att.error is None:
            att.record = {"text": text, **facets}
        att.meta = {"truncated": out.finish_reason == "length"}
        return att

    def _naive_json(self, model: Model, ctx: Context, item_id: str, facets: dict[str, str], seed: int,
                    max_tokens: int) -> Attempt:
        fields = ctx.model_fields()
        props = ctx.output_schema.get("properties", {})
        schema = {**ctx.output_schema, "properties": {k: props[k] for k in fields},
                  "required": [k for k in ctx.output_schema.get("required", fields) if k in fields]}
        lines = instruction(ctx, facets)
        lines.append("Fields:")
        lines += [f"- {k}: {ctx.field_notes.get(k) or props[k].get('type', 'value')}" for k in fields]
        lines.append("Reply with one JSON object with the keys " + ", ".join(f'"{k}"' for k in fields) + ".")
        obj, att = self._json(model, lines, schema, item_id, seed, max_tokens)
        if att.error is None:
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                att.error = "reply has no string 'text' field"
            else:
                att.record = {**obj, **facets}
        return att

    def _templater(self, model: Model, ctx: Context, item_id: str, facets: dict[str, str], rng: random.Random,
                   seed: int, max_tokens: int) -> Attempt:
        assert ctx.grammar is not None
        exp = ctx.grammar.sample(rng)
        slots = [s for s in exp.slots if s not in facets]  # facet slots are filled by the generator
        schema = ctx.grammar_schema or ctx.grammar.derive_schema(exp.template, exclude=list(facets))
        lines = instruction(ctx, facets)
        shown = render(exp.template, facets, keep_missing=True)
        lines.append(f'Fill in the blanks in braces of this template: "{shown}"')
        lines.append("Blanks (write a short new phrase for each; never repeat one):")
        for s in slots:
            sch = ctx.grammar.slot_schema(s)
            lines.append(f"- {s}: {ctx.slot_notes.get(s) or sch.get('type', 'text')}")
        lines.append("Reply with one JSON object with the keys " + ", ".join(f'"{s}"' for s in slots) + ".")
        obj, att = self._json(model, lines, schema, item_id, seed, max_tokens)
        att.meta = {"template": exp.template, "choices": list(exp.choices)}
        if att.error is None:
            if not isinstance(obj, dict):
                att.error = "reply is not a JSON object"
            else:
                missing = [s for s in slots if s not in obj]
                if missing:
                    att.error = f"reply lacks slots {missing}"
                else:
                    att.record = {"text": render(exp.template, {**obj, **facets}),
                                  "slots": {s: obj[s] for s in slots}, **facets}
        return att


def _text_only(schema: dict[str, Any]) -> dict[str, Any]:
    props = schema.get("properties", {})
    return {"type": "object", "properties": {"text": strip_descriptions(props.get("text", {"type": "string"}))},
            "required": ["text"]}


def build_arms(ctx: Context, profiles: dict[str, float], include: list[str] | None = None,
               naive_output: Literal["auto", "text", "json"] = "auto") -> list[Arm]:
    """Arms for every applicable family x profile; `include` keeps names or whole families.

    `naive_output` auto: plain text when the model writes only `text`, else JSON."""
    if naive_output == "auto":
        naive_output = "text" if ctx.model_fields() == ["text"] else "json"
    elif naive_output == "text" and ctx.model_fields() != ["text"]:
        raise ValueError(f"arms.naive_output 'text' needs `text` to be the only field the model writes, "
                         f"the recipe has {ctx.model_fields()}")
    arms = [Arm(f"{fam}:{prof}", fam, prof, float(t),  # type: ignore[arg-type]
                naive_output if fam == "naive" else "json")
            for fam in ctx.arm_families for prof, t in profiles.items()]
    if include:
        arms = [a for a in arms if a.name in include or a.family in include]
    return arms
