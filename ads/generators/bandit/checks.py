"""Checks that depend on the item's own facets or slots, which a static `validators:` entry
cannot express. Both follow the quality toolkit's Validator protocol, so the ValidatorSuite
runs, counts and reports them like any other.

* `FacetMentionValidator` ("the text is about the subject it was asked for", from
  `format.mention_facets`): a small model often drifts into a generic paragraph ("The world
  is a wondrous place...") that passes every length and repetition check;
* `DistinctSlotsValidator` (added whenever the recipe has a grammar): no value pasted into
  several template slots.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from ads.quality.validators import ValidationResult

STOP = {"the", "and", "for", "with", "from", "into", "of", "a", "an", "as", "in", "on", "its", "his", "her"}
PREFIX = 5  # compare word starts, so "volcanoes" matches "volcanic" and "Egypt" matches "Egyptian"


def content_words(value: str) -> list[str]:
    words = re.findall(r"[^\W_]+(?:'s)?", value.lower())
    return [w.removesuffix("'s") for w in words if len(w) >= 3 and w not in STOP]


class FacetMentionValidator:
    cost = 0

    def __init__(self, facet: str, field: str = "text", min_share: float = 0.5):
        self.name = f"mentions_{facet}"
        self.facet, self.field, self.min_share = facet, field, min_share

    def check(self, item: Mapping[str, Any] | str) -> ValidationResult:
        if not isinstance(item, Mapping) or not isinstance(item.get(self.field), str):
            return ValidationResult(self.name, False, f"missing field '{self.field}'")
        value = item.get(self.facet)
        if not isinstance(value, str):
            return ValidationResult(self.name, False, f"missing facet '{self.facet}'")
        words = content_words(value)
        if not words:
            return ValidationResult(self.name, True, f"{self.facet} {value!r} has no content words to look for")
        text = item[self.field].lower()
        found = [w for w in words if w[:PREFIX] in text]
        share = len(found) / len(words)
        ok = share >= self.min_share
        return ValidationResult(self.name, ok, f"{len(found)}/{len(words)} words of {self.facet} {value!r} in the "
                                               f"{self.field}" + ("" if ok else f" (need {self.min_share:.0%})"),
                                round(share, 4))


class DistinctSlotsValidator:
    """Templater items: no two slots filled with the same value (or one inside another).

    A small model that runs out of ideas pastes the product name into every slot; the
    rendered text then reads "I liked Abyss Glide 2, but Abyss Glide 2" and still passes
    length and format checks.
    """

    cost = 0
    name = "distinct_slots"

    def check(self, item: Mapping[str, Any] | str) -> ValidationResult:
        slots = item.get("slots") if isinstance(item, Mapping) else None
        if not isinstance(slots, Mapping):
            return ValidationResult(self.name, True, "not a templater item")
        norm = {k: " ".join(re.findall(r"[^\W_]+", v.lower())) for k, v in slots.items() if isinstance(v, str)}
        keys = sorted(norm)
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                va, vb = norm[a], norm[b]
                if va and vb and (va == vb or (min(len(va), len(vb)) >= 4 and (va in vb or vb in va))):
                    return ValidationResult(self.name, False, f"slots {a!r} and {b!r} repeat {slots[a]!r}")
        return ValidationResult(self.name, True, f"{len(norm)} distinct slot values")
