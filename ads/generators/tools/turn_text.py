"""The prose of a conversation: prompts and worked examples for the user's and the assistant's
free-text turns, and the cleaning that cuts a small model's reply down to the turn itself.

Only the call arguments are grammar-constrained. llama.cpp applies a grammar to the whole
vocabulary at every token, which made a constrained token about twice as dear as a free one on 2 CPU cores
(bench/bench_bandit_decoding.py; docs/bandit.md), so the prose turns are plain text, cleaned and checked here
(role labels, stray JSON and run-on continuations are cut; an empty or one-word reply is a
rejection). `mentioned` is the one test of "did this text state that value", shared by the
opening, the clarification answer and the argument checks.
"""
from __future__ import annotations

import json
import re
from typing import Any

from ads.generators.tools.schema import Endpoint
from models.structured import extract_json

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


def short_json(obj: Any, n: int) -> str:
    s = json.dumps(obj, ensure_ascii=False, default=str)
    return s if len(s) <= n else s[:n] + "...}"


def mentioned(value: Any, text: str) -> bool:
    t = text.lower()
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return str(value) in t or (float(value).is_integer() and str(int(value)) in t)
    if isinstance(value, list):
        return all(mentioned(v, text) for v in value)
    return str(value).strip().lower() in t

