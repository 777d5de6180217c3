"""ADS tasks: sets of instructions that share one knowledge need, built from real data.

A task is what the optimizer acquires data *for*: several instructions that the same data
would help with (questions about one Wikipedia article, a handful of GSM8K problems, extracts
with one topic label, or the lines of a user file that share a `task` value). Each task's
instructions are split once, by the seed, into

- *train* instructions: shown to the optimizer with the policy's answers and scores (the
  weakness signal) and used for the reward;
- *held-out* instructions: used only by the evaluation.

Whole tasks are held out as well (`test_families`), so a report can tell "new instructions
of a trained task" from "a task never seen in training". No held-out instruction text, and no
task's gold source document, is ever put in an optimizer prompt, the exemplar memory or a
LoRA training set (tests/unit/test_ads_loop.py checks the prompts).

Articles and GSM8K questions reserved for the downstream fine-tuning evaluation
(`ads.downstream.evalset.is_heldout`) are never used here, so a model fine-tuned on an ADS
export is scored on sources ADS never saw.
"""
from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import Field, field_validator, model_validator

from ads.config import ConfigError, Strict
from ads.store import jsonl_lines
from ads.gold_tasks import (_mask_title, check_family_counts, check_user_tasks_path, normalize, score_gsm8k, score_label,
                       score_name, score_number, split_user_tasks, token_f1)
from apis.corpus import Document

FAMILIES = ("wiki", "gsm8k", "topic", "user")
SCORERS = ("name", "number", "math", "label", "exact", "contains", "f1", "judge")
TOPIC_LABELS_DROP = {"Uncategorized"}


@dataclass
class Instruction:
    id: str
    prompt: str
    gold: str | None
    scorer: str  # one of SCORERS
    source: str  # the gold source document's id (the oracle's context); "" when unknown
    meta: dict[str, Any] = field(default_factory=dict)

    def content(self) -> str:
        """The instruction without its first (directive) line: what a search for it should use."""
        return self.prompt.split("\n", 1)[-1]


@dataclass
class Task:
    id: str
    family: str
    train: list[Instruction]
    held_out: list[Instruction]
    sources: dict[str, str] = field(default_factory=dict)  # source id -> gold document text (oracle only)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def instructions(self) -> list[Instruction]:
        return self.train + self.held_out

    def query_text(self, max_chars: int = 400) -> str:
        """What `{task}` in a plan's argument stands for: the train instructions' content, joined."""
        return " ".join(i.content().replace("\n", " ") for i in self.train)[:max_chars]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Task":
        return cls(id=d["id"], family=d["family"], train=[Instruction(**i) for i in d["train"]],
                   held_out=[Instruction(**i) for i in d["held_out"]], sources=d.get("sources", {}),
                   meta=d.get("meta", {}))


class TasksConfig(Strict):
    # tasks per family that the loop trains on (their held-out instructions are evaluated too)
    families: dict[str, int] = {"wiki": 8}
    # whole tasks per family never seen in training; None: as many as `families`
    test_families: dict[str, int] | None = None
    instructions_per_task: int = Field(5, ge=2, le=20)
    train_instructions: int = Field(3, ge=1)  # per task; the rest are held out
    user_tasks_path: str | None = None
    user_scoring: Literal["exact", "contains", "f1", "judge"] = "contains"
    seed: int = 0

    @field_validator("families", "test_families")
    @classmethod
    def _known_and_counts(cls, v: dict[str, int] | None) -> dict[str, int] | None:
        return check_family_counts(v, FAMILIES)

    @model_validator(mode="after")
    def _consistent(self) -> "TasksConfig":
        if self.train_instructions >= self.instructions_per_task:
            raise ValueError(f"train_instructions ({self.train_instructions}) must be below instructions_per_task "
                             f"({self.instructions_per_task}): each task keeps at least one held-out instruction")
        if self.test_families is not None and set(self.test_families) != set(self.families):
            raise ValueError(f"test_families must name the same families as families {sorted(self.families)}")
        check_user_tasks_path(self.families, self.user_tasks_path,
                              '{"task": ..., "instruction": ..., "reference": ...}')
        return self


# --- scoring -------------------------------------------------------------------------------
def score_exact(answer: str, gold: str) -> float:
    return 1.0 if normalize(answer) == normalize(gold) else 0.0


def score_contains(answer: str, gold: str) -> float:
    """1 when the reference's words appear, in order, inside the answer (a long answer that
    contains a one-word reference is right, which token F1 would score near 0)."""
    g = normalize(gold)
    return 1.0 if g and f" {g} " in f" {normalize(answer)} " else 0.0


def scorer(ins: Instruction) -> Callable[[str], float] | None:
    """answer -> [0, 1] for an instruction with a gold answer; None when it needs the judge."""
    if ins.gold is None or ins.scorer == "judge":
        return None
    gold = ins.gold
    table: dict[str, Callable[[str], float]] = {
        "name": lambda a: score_name(a, gold),
        "number": lambda a: score_number(a, gold),
        "math": lambda a: score_gsm8k(a, gold),
        "label": lambda a: score_label(a, gold, ins.meta.get("labels", [gold])),
        "exact": lambda a: score_exact(a, gold),
        "contains": lambda a: score_contains(a, gold),
        "f1": lambda a: round(token_f1(a, gold), 4),
    }
    return table[ins.scorer]


# --- Wikipedia: several questions about one article ----------------------------------------------
_SENT = re.compile(r"(?<=[.!?])\s+")
_NUM = re.compile(r"\b(1[0-9]{3}|20[0-2][0-9]|\d{2,}(?:,\d{3})*)\b")
_NAME = re.compile(r"(?<![\w.])([A-Z][a-z]{2,}(?:\s+(?:of\s+|de\s+|the\s+)?[A-Z][a-z]+){0,3})")
NAME_DIRECTIVE = "Name the subject described below. Answer with the name only."
NUMBER_DIRECTIVE = "Fill in the blank with the missing number. Answer with the number only."
ENTITY_DIRECTIVE = "Fill in the blank with the missing name. Answer with the name only."


def article_instructions(doc: Document, rng: random.Random) -> list[Instruction]:
    """Every question one article answers: its name (from the description and the masked first
    sentence), each number of its sentences, and names inside its sentences (not the title)."""
    out: list[Instruction] = []
    title = doc.title.split(" (")[0]
    sentences = [s for s in _SENT.split(doc.text.strip()) if s]
    if not sentences:
        return out
    first = _mask_title(sentences[0], doc.title)
    if doc.description and "___" in first and len(doc.title) >= 3:
        out.append(Instruction(id=f"{doc.id}-name", prompt=f"{NAME_DIRECTIVE}\nDescription: {doc.description}\n"
                               f"First sentence: {first}", gold=doc.title, scorer="name", source=doc.id))
    title_words = {w.lower() for w in re.findall(r"\w+", doc.title)}
    for si, s in enumerate(sentences):
        if len(s.split()) < 6:
            continue
        for n, m in enumerate(_NUM.finditer(s)):
            gold = m.group(1)
            masked = s[:m.start()] + "___" + s[m.end():]
            out.append(Instruction(id=f"{doc.id}-num{si}.{n}", prompt=f"{NUMBER_DIRECTIVE}\nSubject: {title}\n"
                                   f"Sentence: {masked}", gold=gold.replace(",", ""), scorer="number", source=doc.id))
        for n, m in enumerate(_NAME.finditer(s)):
            name = m.group(1)
            if m.start() == 0 or {w.lower() for w in re.findall(r"\w+", name)} & title_words:
                continue
            masked = s[:m.start()] + "___" + s[m.end():]
            out.append(Instruction(id=f"{doc.id}-ent{si}.{n}", prompt=f"{ENTITY_DIRECTIVE}\nSubject: {title}\n"
                                   f"Sentence: {masked}", gold=name, scorer="name", source=doc.id))
    return out


def _sentence_of(ins: Instruction) -> str:
    tail = ins.id.rsplit("-", 1)[-1]
    return "0" if tail == "name" else tail.lstrip("nument").split(".")[0]


def _pick(cands: list[Instruction], n: int, rng: random.Random) -> list[Instruction]:
    """n instructions from different sentences (two blanks in one sentence would show each other's
    answer), the name question first when there is one, the rest drawn at random."""
    order = [c for c in cands if c.id.endswith("-name")][:1]
    rest = [c for c in cands if c not in order]
    rng.shuffle(rest)
    used = {_sentence_of(c) for c in order}
    for c in rest:
        if _sentence_of(c) not in used:
            order.append(c)
            used.add(_sentence_of(c))
    return order[:n]


def reveals(train: list[Instruction], held: list[Instruction]) -> bool:
    """True when a held-out answer is written in a train instruction (the optimizer would see it)."""
    text = " " + " ".join(normalize(i.prompt) for i in train) + " "
    return any(i.gold and f" {normalize(i.gold)} " in text for i in held)


def _split(task_id: str, family: str, chosen: list[Instruction], k_train: int, rng: random.Random,
           sources: dict[str, str], meta: dict[str, Any] | None = None) -> Task | None:
    """Shuffle into train / held-out; for articles, a split where no held-out answer appears in a
    train instruction (None when there is none among 20 shuffles)."""
    order = list(chosen)
    for _ in range(20):
        rng.shuffle(order)
        if family != "wiki" or not reveals(order[:k_train], order[k_train:]):
            break
    else:
        return None
    for ins in order:
        ins.id = f"{task_id}/{ins.id.rsplit('-', 1)[-1] if family == 'wiki' else ins.id}"
    return Task(id=task_id, family=family, train=order[:k_train], held_out=order[k_train:], sources=sources,
                meta=meta or {})


def wiki_tasks(docs: list[Document], n: int, cfg: TasksConfig, rng: random.Random) -> list[Task]:
    out = []
    for doc in docs:
        if len(out) >= n:
            break
        cands = article_instructions(doc, rng)
        if len(cands) < cfg.instructions_per_task:
            continue
        chosen = _pick(cands, cfg.instructions_per_task, rng)
        if len(chosen) < cfg.instructions_per_task:
            continue
        task = _split(f"wiki-{doc.id}", "wiki", chosen, cfg.train_instructions, rng,
                      {doc.id: f"{doc.title}: {doc.text}"}, {"title": doc.title})
        if task is not None:
            out.append(task)
    return out


def topic_tasks(docs: list[Document], n: int, cfg: TasksConfig, rng: random.Random,
                labels: list[str]) -> list[Task]:
    """Extracts that share one topic label: the need is knowing what that label covers."""
    by_label: dict[str, list[Document]] = {}
    for d in docs:
        if d.topic and d.topic not in TOPIC_LABELS_DROP:
            by_label.setdefault(d.topic, []).append(d)
    out, k = [], cfg.instructions_per_task
    pools = {lbl: iter(ds) for lbl, ds in sorted(by_label.items())}
    order = sorted(pools)
    rng.shuffle(order)
    while len(out) < n and order:
        for lbl in list(order):
            group = [d for _, d in zip(range(k), pools[lbl])]
            if len(group) < k:
                order.remove(lbl)
                continue
            ins = [Instruction(id=f"{d.id}", prompt=(
                f"Which topic does this text belong to? Choose one of: {', '.join(labels)}. Answer with the topic "
                f"only.\nText: {' '.join(_mask_title(d.text, d.title).split()[:80])}"), gold=lbl, scorer="label",
                source=d.id, meta={"labels": labels}) for d in group]
            sources = {d.id: f"{d.title} (topic: {d.topic}): {d.text}" for d in group}
            out.append(_split(f"topic-{group[0].id}", "topic", ins, cfg.train_instructions, rng, sources,
                              {"label": lbl}))
            if len(out) >= n:
                break
    return out


def gsm8k_tasks(rows: list[dict[str, str]], n: int, cfg: TasksConfig, rng: random.Random) -> list[Task]:
    out, k = [], cfg.instructions_per_task
    for j in range(n):
        group = rows[j * k:(j + 1) * k]
        if len(group) < k:
            break
        ins = [Instruction(id=r["source"], prompt=f"Solve the problem. End with the final number.\n{r['question']}",
                           gold=r["answer"], scorer="math", source=r["source"]) for r in group]
        sources = {r["source"]: f"Worked solution: {r['solution']} The answer is {r['answer']}." for r in group}
        out.append(_split(f"gsm8k-{group[0]['source']}", "gsm8k", ins, cfg.train_instructions, rng, sources))
    return out


def load_user_tasks(cfg: TasksConfig) -> list[Task]:
    """JSONL lines {task?, instruction, reference?, source?, scoring?}, grouped by `task`
    (lines without one are grouped in file order, instructions_per_task at a time)."""
    path = Path(cfg.user_tasks_path or "")
    if not path.is_file():
        raise ConfigError(f"tasks.user_tasks_path: file not found: {path}")
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for n, (where, r) in enumerate(jsonl_lines(path, ConfigError)):
        if not isinstance(r, dict) or not isinstance(r.get("instruction"), str) or not r["instruction"].strip():
            raise ConfigError(f"{where}: needs a non-empty string field 'instruction'")
        for key in ("reference", "source", "task"):
            if r.get(key) is not None and not isinstance(r[key], (str, int)):
                raise ConfigError(f"{where}: '{key}' must be a string when given")
        if r.get("scoring") is not None and r["scoring"] not in ("exact", "contains", "f1", "judge"):
            raise ConfigError(f"{where}: 'scoring' must be one of exact, contains, f1, judge")
        key = str(r["task"]) if r.get("task") is not None else f"group{n // cfg.instructions_per_task}"
        groups.setdefault(key, []).append((where, r))
    if not groups:
        raise ConfigError(f"{path}: no tasks in the file")
    rng = random.Random(cfg.seed)
    tasks = []
    for key, lines in groups.items():
        if len(lines) < 2:
            raise ConfigError(f"{lines[0][0]}: task {key!r} has one instruction; a task needs at least 2 "
                              "(one the optimizer sees, one held out)")
        tid = f"user-{re.sub(r'[^A-Za-z0-9_.-]+', '_', key)[:60]}"
        ins, sources = [], {}
        for j, (where, r) in enumerate(lines):
            src = f"{tid}#{j}"
            if r.get("source"):
                sources[src] = str(r["source"])
            ins.append(Instruction(id=f"{j}", prompt=r["instruction"],
                                   gold=str(r["reference"]) if r.get("reference") is not None else None,
                                   scorer=r.get("scoring") or (cfg.user_scoring if r.get("reference") is not None
                                                              else "judge"),
                                   source=src if src in sources else ""))
        tasks.append(_split(tid, "user", ins, min(cfg.train_instructions, len(ins) - 1), rng, sources))
    return tasks


def build_task_sets(cfg: TasksConfig, docs: list[Document] | None = None,
                    gsm8k: list[dict[str, str]] | None = None) -> tuple[list[Task], list[Task]]:
    """(trained, held_out) task lists from disjoint sources: an article or GSM8K question belongs to
    one task only, and none is in the downstream fine-tuning evaluation pool."""
    from ads.downstream.evalset import is_heldout

    test_counts = cfg.test_families if cfg.test_families is not None else cfg.families
    rng = random.Random(cfg.seed)
    train: list[Task] = []
    test: list[Task] = []
    if {"wiki", "topic"} & set(cfg.families):
        if docs is None:
            from apis.corpus import load_corpus

            docs = load_corpus(None)
        pool = [d for d in docs if not is_heldout(d.id)]
        rng.shuffle(pool)
        half = len(pool) // 2
        labels = sorted({d.topic for d in docs if d.topic and d.topic not in TOPIC_LABELS_DROP})
        for side, part, out in (("train", pool[:half], train), ("test", pool[half:], test)):
            counts = cfg.families if side == "train" else test_counts
            if counts.get("wiki"):
                out += wiki_tasks(part, counts["wiki"], cfg, rng)
            if counts.get("topic"):
                out += topic_tasks(part, counts["topic"], cfg, rng, labels)
    if "gsm8k" in cfg.families:
        if gsm8k is None:
            from ads.downstream.evalset import gsm8k_rows

            gsm8k = gsm8k_rows()
        rows = [r for r in gsm8k if not is_heldout(r["source"])]
        rng.shuffle(rows)
        n, m = cfg.families["gsm8k"], test_counts["gsm8k"]
        k = cfg.instructions_per_task
        train += gsm8k_tasks(rows[: n * k], n, cfg, rng)
        test += gsm8k_tasks(rows[n * k:(n + m) * k], m, cfg, rng)
    if "user" in cfg.families:
        a, b = split_user_tasks(load_user_tasks(cfg), cfg.families["user"], test_counts["user"],
                                cfg.user_tasks_path, rng)
        train += a
        test += b
    for fam, want in cfg.families.items():
        got = sum(t.family == fam for t in train)
        if got < want:
            raise ConfigError(f"tasks.families.{fam}: {want} tasks requested but the data yields {got} with "
                              f"{cfg.instructions_per_task} instructions each")
    shared = {s for t in train for s in t.sources} & {s for t in test for s in t.sources}
    if shared:
        raise AssertionError(f"trained and held-out tasks share sources {sorted(shared)[:5]}")
    return train, test
