"""Data-acquisition APIs on a small in-memory corpus with a scripted model.

What is specified here: corpora load from JSONL and `datasets` folders with clear errors;
BM25 finds the right document with either backend; the index persists, is rebuilt when the
corpus changes and when a save was cut short; demonstrations and answers come back as
structured observations; and every kind of bad input is an error observation that is
counted and charged, never an exception.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ads.config import ConfigError, validate
from ads.ledger import CostLedger
from apis.api_registry import Observation
from apis.corpus import CorpusConfig, CorpusError, Document, load_corpus
from apis.demonstrations import DemonstrationApi, normalize, pairs_schema
from apis.factory import ApisConfig, build_api_registry
from apis.qa import QuestionAnsweringApi, answer_schema, validate_answer
from apis.retrieval import Bm25Index, Bm25Settings, RetrievalApi, TokenizerSettings, corpus_fingerprint
from models.base import ModelError
from models.fake import FakeModel

ROOT = Path(__file__).resolve().parents[2]

DOCS = [
    Document("volcano", "Volcano", "A volcano is a rupture in the crust of a planet where lava, ash and gases escape "
             "from a magma chamber below the surface.", "Geological feature", "Physical sciences"),
    Document("jazz", "Jazz", "Jazz is a music genre that originated in the African-American communities of New "
             "Orleans, with roots in blues and ragtime, known for swing and improvisation.", "Music genre", "Arts"),
    Document("penguin", "Penguin", "Penguins are flightless aquatic birds that live almost exclusively in the "
             "Southern Hemisphere, especially in Antarctica.", "Family of birds", "Biology"),
    Document("photosynthesis", "Photosynthesis", "Photosynthesis is the process by which plants and algae use "
             "sunlight, water and carbon dioxide to produce glucose and oxygen.", "Biological process", "Biology"),
    Document("rome", "Ancient Rome", "Ancient Rome was a civilization that grew from a city on the Tiber into an "
             "empire around the Mediterranean Sea.", "Civilization", "History"),
    Document("chess", "Chess", "Chess is a board game for two players, played on a checkered board of 64 squares "
             "with sixteen pieces each, including a king and a queen.", "Board game", "Everyday life"),
    Document("insulin", "Insulin", "Insulin is a peptide hormone produced by the pancreas that regulates the "
             "metabolism of glucose in the blood.", "Hormone", "Biology"),
    Document("saturn", "Saturn", "Saturn is the sixth planet from the Sun and the second largest in the Solar "
             "System, famous for its bright rings of ice.", "Planet", "Physical sciences"),
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def index() -> Bm25Index:
    return Bm25Index(DOCS, verbose=False)


# --- corpus ---------------------------------------------------------------------------------
def test_jsonl_corpus_with_custom_field_names(tmp_path):
    p = write_jsonl(tmp_path / "c.jsonl", [{"key": "a", "body": "Alpha text.", "name": "Alpha", "cat": "x"},
                                           {"key": "b", "body": "  ", "name": "Empty"},
                                           {"key": "c", "body": "Gamma text.", "name": "Gamma"}])
    docs = load_corpus(CorpusConfig(source="jsonl", path=str(p), text_field="body", title_field="name",
                                    id_field="key", topic_field="cat"))
    assert [(d.id, d.title, d.text, d.topic) for d in docs] == [("a", "Alpha", "Alpha text.", "x"),
                                                                ("c", "Gamma", "Gamma text.", "")]


def test_jsonl_corpus_without_ids_or_titles_numbers_rows(tmp_path):
    p = write_jsonl(tmp_path / "c.jsonl", [{"text": "one"}, {"text": "two"}])
    docs = load_corpus(CorpusConfig(source="jsonl", path=str(p), id_field=None, title_field=None))
    assert [(d.id, d.title) for d in docs] == [("doc-0", ""), ("doc-1", "")]


def test_missing_corpus_file_names_the_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(CorpusError, match=str(missing)):
        load_corpus(CorpusConfig(source="jsonl", path=str(missing)))
    with pytest.raises(ConfigError, match="corpus.path: required"):
        load_corpus(CorpusConfig(source="jsonl"))


def test_missing_field_names_file_line_and_field(tmp_path):
    p = write_jsonl(tmp_path / "c.jsonl", [{"id": "1", "text": "ok", "title": "t"}, {"id": "2", "body": "x"}])
    with pytest.raises(CorpusError) as e:
        load_corpus(CorpusConfig(source="jsonl", path=str(p)))
    assert f"{p}:2" in str(e.value) and "'text'" in str(e.value)


def test_bad_json_line_and_duplicate_ids_are_named(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text('{"id": "1", "text": "a", "title": "t"}\n{broken\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=f"{p}:2: not valid JSON"):
        load_corpus(CorpusConfig(source="jsonl", path=str(p)))
    write_jsonl(p, [{"id": "1", "text": "a", "title": "t"}, {"id": "1", "text": "b", "title": "u"}])
    with pytest.raises(CorpusError, match="duplicate id '1'"):
        load_corpus(CorpusConfig(source="jsonl", path=str(p)))


def test_datasets_folder_corpus_and_missing_column(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"doc_id": ["x", "y"], "content": ["first text", "second text"],
                                     "heading": ["X", "Y"]})
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd"))
    cfg = CorpusConfig(source="hf_disk", path=str(tmp_path / "dd"), text_field="content", title_field="heading",
                       id_field="doc_id")
    docs = load_corpus(cfg)
    assert [(d.id, d.title, d.text) for d in docs] == [("x", "X", "first text"), ("y", "Y", "second text")]
    with pytest.raises(CorpusError) as e:
        load_corpus(cfg.model_copy(update={"text_field": "body"}))
    assert str(tmp_path / "dd") in str(e.value) and "'body'" in str(e.value) and "content" in str(e.value)
    with pytest.raises(CorpusError, match="choose a split"):
        load_corpus(cfg.model_copy(update={"split": "test"}))
    with pytest.raises(CorpusError, match="dataset folder not found"):
        load_corpus(cfg.model_copy(update={"path": str(tmp_path / "none")}))


# --- retrieval ------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["bm25s", "rank_bm25"])
def test_bm25_finds_the_document_for_its_words(backend):
    idx = Bm25Index(DOCS, Bm25Settings(backend=backend), verbose=False)
    for query, want in [("flightless birds of Antarctica", "penguin"), ("pancreas hormone glucose", "insulin"),
                        ("rings of the sixth planet", "saturn"), ("improvisation and swing music", "jazz"),
                        ("magma and lava eruptions", "volcano")]:
        hits = idx.search(query, top_k=3)
        assert hits[0].doc.id == want, (query, [h.doc.id for h in hits])
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        assert all(a.score >= b.score > 0 for a, b in zip(hits, hits[1:]))


def test_stemming_matches_word_forms(index):
    assert index.search("checkered boards", 1)[0].doc.id == "chess"  # "boards" -> "board"
    plain = Bm25Index(DOCS, Bm25Settings(tokenizer=TokenizerSettings(stemmer="none")), verbose=False)
    assert plain.search("bird", 3) == []  # the text only says "birds"
    assert index.search("bird", 1)[0].doc.id == "penguin"


def test_search_respects_top_k_and_returns_nothing_for_unknown_words(index):
    assert len(index.search("the planet and the sun and plants", top_k=2)) == 2
    assert index.search("zzyzx qwertyuiop", top_k=5) == []


def test_backends_agree_on_the_small_corpus():
    a = Bm25Index(DOCS, Bm25Settings(backend="bm25s"), verbose=False)
    b = Bm25Index(DOCS, Bm25Settings(backend="rank_bm25"), verbose=False)
    for q in ["glucose", "board game with a king", "birds in the Southern Hemisphere", "empire on the Tiber"]:
        assert [h.doc.id for h in a.search(q, 3)] == [h.doc.id for h in b.search(q, 3)]


def test_fingerprint_follows_texts_ids_and_tokenizer():
    base = corpus_fingerprint(DOCS, Bm25Settings())
    assert corpus_fingerprint(list(DOCS), Bm25Settings()) == base
    edited = DOCS[:-1] + [Document("saturn", "Saturn", DOCS[-1].text + " It has many moons.")]
    assert corpus_fingerprint(edited, Bm25Settings()) != base
    renamed = DOCS[:-1] + [Document("saturn-2", "Saturn", DOCS[-1].text, DOCS[-1].description, DOCS[-1].topic)]
    assert corpus_fingerprint(renamed, Bm25Settings()) != base
    assert corpus_fingerprint(DOCS, Bm25Settings(tokenizer=TokenizerSettings(stopwords="none"))) != base
    assert corpus_fingerprint(DOCS, Bm25Settings(k1=1.2)) != base
    # the backend does not change the index a fingerprint names
    assert corpus_fingerprint(DOCS, Bm25Settings(backend="rank_bm25")) == base


def test_index_persists_and_is_rebuilt_only_when_the_corpus_changes(tmp_path):
    first = Bm25Index(DOCS, cache_dir=tmp_path, verbose=False)
    assert first.load_status == "built" and (first.path / "manifest.json").is_file()
    assert first.path.parent == tmp_path / "indexes"
    second = Bm25Index(DOCS, cache_dir=tmp_path, verbose=False)
    assert second.load_status == "loaded" and second.path == first.path
    q = "planet with rings of ice"
    assert [(h.doc.id, h.score) for h in second.search(q, 3)] == [(h.doc.id, h.score) for h in first.search(q, 3)]
    grown = DOCS + [Document("ring", "Ring", "A ring is a round band worn on a finger, often of gold.")]
    third = Bm25Index(grown, cache_dir=tmp_path, verbose=False)
    assert third.load_status == "built" and third.path != first.path
    assert any(h.doc.id == "ring" for h in third.search("gold ring", 2))
    assert sorted(p.name for p in (tmp_path / "indexes").iterdir()) == sorted([first.path.name, third.path.name])


@pytest.mark.parametrize("damage", ["manifest", "truncate", "delete", "flip"])
def test_torn_or_damaged_index_is_detected_and_rebuilt(tmp_path, capfd, damage):
    good = Bm25Index(DOCS, cache_dir=tmp_path, verbose=False)
    target = good.path / "data.csc.index.npy"
    if damage == "manifest":  # the state a save interrupted before its last step leaves in place
        (good.path / "manifest.json").unlink()
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:20])
    elif damage == "delete":
        (good.path / "vocab.index.json").unlink()
    else:  # same size, different bytes
        raw = bytearray(target.read_bytes())
        raw[-1] ^= 0xFF
        target.write_bytes(bytes(raw))
    again = Bm25Index(DOCS, cache_dir=tmp_path, verbose=True)
    assert again.load_status.startswith("rebuilt:")
    assert "incomplete or corrupt" in capfd.readouterr().err
    assert again.verify(again.path) is None
    assert again.search("flightless birds", 1)[0].doc.id == "penguin"
    assert Bm25Index(DOCS, cache_dir=tmp_path, verbose=False).load_status == "loaded"


def test_process_killed_during_save_leaves_no_index_and_next_run_builds_cleanly(tmp_path):
    """A child process dies (os._exit) halfway through writing the index files."""
    corpus = write_jsonl(tmp_path / "c.jsonl", [d.to_dict() for d in DOCS])
    script = textwrap.dedent(f"""
        import os, bm25s
        from apis.corpus import CorpusConfig, load_corpus
        from apis.retrieval import Bm25Index
        real_save = bm25s.BM25.save
        def dying_save(self, save_dir, **kw):
            real_save(self, save_dir, **kw)
            os.remove(os.path.join(save_dir, "vocab.index.json"))  # as if killed mid-write
            os._exit(9)
        bm25s.BM25.save = dying_save
        Bm25Index(load_corpus(CorpusConfig(source="jsonl", path={str(corpus)!r})), cache_dir={str(tmp_path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    leftovers = list((tmp_path / "indexes").iterdir())
    assert len(leftovers) == 1 and ".tmp-" in leftovers[0].name  # never renamed into place
    docs = load_corpus(CorpusConfig(source="jsonl", path=str(corpus)))
    idx = Bm25Index(docs, cache_dir=tmp_path, verbose=False)
    assert idx.load_status == "built"
    assert [p.name for p in (tmp_path / "indexes").iterdir()] == [idx.path.name]  # stale temp folder removed


# --- the registry, end to end ---------------------------------------------------------------
def test_retrieval_api_returns_passages_and_readable_text(index):
    ledger = CostLedger()
    reg = build_api_registry(ApisConfig(enabled=["information_retrieval"]), ledger=ledger, index=index)
    obs = reg.call("information_retrieval", {"query": "Which planet has rings?", "top_k": 2})
    assert obs.ok and obs.api == "information_retrieval" and obs.cost == 1.0
    passages = obs.payload["passages"]
    assert len(passages) == 2 and passages[0]["id"] == "saturn"
    assert set(passages[0]) == {"id", "title", "text", "score"} and passages[0]["text"] == DOCS[-1].text
    assert obs.text.startswith("(1) Saturn: Saturn is the sixth planet")
    assert reg.call("information_retrieval", {"query": "glucose"}).payload["top_k"] == 3  # the config default
    assert ledger.totals()["cost_units"] == 2.0 and ledger.totals()["api_calls"] == 2


BAD_CALLS = [
    ("information_retrieval", {"query": ""}, "must not be empty"),
    ("information_retrieval", {"query": "   \n"}, "must not be empty"),
    ("information_retrieval", {}, "missing required argument 'query'"),
    ("information_retrieval", {"query": 42}, "expected string, got int"),
    ("information_retrieval", {"query": "rings", "top_k": "3"}, "expected integer, got str"),
    ("information_retrieval", {"query": "rings", "top_k": True}, "got boolean"),
    ("information_retrieval", {"query": "rings", "top_k": 0}, "below the minimum"),
    ("information_retrieval", {"query": "rings", "top_k": 21}, "above the maximum"),
    ("information_retrieval", {"query": "x" * 501}, "exceeds the limit of 500"),
    ("information_retrieval", {"query": "rings", "lang": "en"}, "unknown argument"),
    ("information_retrieval", ["rings"], "arguments must be an object"),
    ("information_retrieval", {"query": "the of and ?!"}, "no searchable words"),
    ("web_search", {"query": "rings"}, "unknown API 'web_search'"),
    ("demonstration_generation", {"topic": "chess", "k": 99}, "above the maximum"),
    ("demonstration_generation", {"topic": "chess", "grounded": "yes"}, "expected boolean"),
    ("question_answering", {"question": "?" * 600}, "exceeds the limit"),
]


def test_every_bad_input_is_an_error_observation_counted_and_charged(index):
    ledger = CostLedger()
    model = FakeModel(['{"pairs": []}'])
    reg = build_api_registry(ApisConfig(), model=model, ledger=ledger, index=index)
    for name, args, why in BAD_CALLS:
        obs = reg.call(name, args)
        assert isinstance(obs, Observation) and not obs.ok, (name, args)
        assert why in obs.error and obs.text.startswith("ERROR:") and obs.payload == {"error": obs.error}
        assert obs.cost == 1.0
    assert model.calls == []  # no bad call reached the model
    assert sum(reg.error_counts.values()) == len(BAD_CALLS)
    assert reg.error_counts["web_search"] == 1
    t = ledger.totals()
    assert t["api_calls"] == t["failed_calls"] == len(BAD_CALLS) and t["cost_units"] == len(BAD_CALLS)
    assert "unknown:web_search" in ledger.totals_by("role")


def test_error_cost_and_per_api_costs_come_from_the_config(index):
    cfg = validate(ApisConfig, {"costs": {"information_retrieval": 0.5, "question_answering": 4, "error": 2.5}},
                   "test")
    ledger = CostLedger()
    reg = build_api_registry(cfg, model=FakeModel(["Saturn"]), ledger=ledger, index=index)
    assert reg.get("information_retrieval").cost == 0.5 and reg.get("question_answering").cost == 4
    reg.call("information_retrieval", {"query": "rings"})
    reg.call("question_answering", {"question": "Which planet has rings?"})
    reg.call("information_retrieval", {"query": ""})
    assert ledger.totals()["cost_units"] == 0.5 + 4 + 2.5


def test_a_failing_model_becomes_an_error_observation(index):
    def boom(messages, kw):
        raise ModelError("context window exceeded")

    reg = build_api_registry(ApisConfig(), model=FakeModel(boom), ledger=CostLedger(), index=index)
    obs = reg.call("question_answering", {"question": "What is jazz?"})
    assert not obs.ok and "ModelError: context window exceeded" in obs.error
    assert reg.error_counts == {"question_answering": 1}


# --- demonstrations -------------------------------------------------------------------------
def pairs_json(*pairs: tuple[str, str]) -> str:
    return json.dumps({"pairs": [{"instruction": i, "response": r} for i, r in pairs]})


def test_demonstrations_are_schema_constrained_and_valid_pairs_come_back(index):
    model = FakeModel([pairs_json(("How many squares does a chess board have?", "It has 64 squares."),
                                  ("Name the most important chess piece.", "The king."))])
    api = DemonstrationApi(model, index, default_k=2)
    obs = api(topic="chess")
    assert obs.ok and obs.payload["pairs"] == [
        {"instruction": "How many squares does a chess board have?", "response": "It has 64 squares."},
        {"instruction": "Name the most important chess piece.", "response": "The king."}]
    assert obs.payload["n_rejected"] == 0 and obs.payload["grounded"] is False
    call = model.calls[0]
    assert call["json_schema"] == pairs_schema(2) and call["json_schema"]["properties"]["pairs"]["maxItems"] == 2
    assert "Write 2 different instruction-response pairs" in call["messages"][-1]["content"]
    assert call["max_tokens"] >= 2 * 100
    assert "Instruction: How many squares" in obs.text and "Response: The king." in obs.text


@pytest.mark.parametrize("raw", ["I'd be happy to help! Here are pairs:", '{"pairs": [{"instruction": "Wha',
                                 '{"examples": []}', '{"pairs": "none"}', "", "[1, 2]"])
def test_malformed_output_gives_zero_pairs_and_a_counted_rejection(index, raw):
    reg = build_api_registry(ApisConfig(), model=FakeModel([raw]), ledger=CostLedger(), index=index)
    obs = reg.call("demonstration_generation", {"topic": "chess", "k": 2})
    assert obs.ok and obs.payload["pairs"] == [] and obs.payload["rejected"] == {"malformed_output": 1}
    assert obs.payload["parse_error"] and "No valid demonstrations" in obs.text
    assert reg.error_counts == {}


def test_bad_pairs_are_rejected_by_reason_and_duplicates_removed(index):
    model = FakeModel([pairs_json(
        ("What is chess?", "A board game for two players."),
        ("  what is CHESS ", "Duplicate after normalization."),
        ("", "No instruction."),
        ("Chess", "Echo of the topic as the instruction."),
        ("Explain castling.", "Explain castling."),
        ("Write 5 different instruction-response pairs about this topic.", "An echo of the request."),
        ("Who was a famous chess champion?", "Garry Kasparov."),
    )])
    obs = DemonstrationApi(model, index, max_k=8)(topic="chess", k=5)
    assert [p["instruction"] for p in obs.payload["pairs"]] == ["What is chess?", "Who was a famous chess champion?"]
    assert obs.payload["rejected"] == {"duplicate": 1, "empty": 1, "echo": 2, "response_equals_instruction": 1}
    assert obs.payload["n_rejected"] == 5


def test_wrongly_typed_pairs_are_rejected_not_raised(index):
    raw = json.dumps({"pairs": [{"instruction": 3, "response": "x"}, "text", {"instruction": "Define a pawn."},
                                {"instruction": "Define a pawn.", "response": "The least valuable chess piece."}]})
    obs = DemonstrationApi(FakeModel([raw]), index)(topic="chess", k=3)
    assert len(obs.payload["pairs"]) == 1 and obs.payload["rejected"] == {"not_a_pair": 3}


def test_grounded_demonstrations_put_retrieved_passages_in_the_prompt(index):
    model = FakeModel([pairs_json(("Where do penguins live?", "Mostly in the Southern Hemisphere."))])
    obs = DemonstrationApi(model, index, top_k=1)(topic="penguins", k=1, grounded=True)
    prompt = model.calls[0]["messages"][-1]["content"]
    assert "Penguins are flightless aquatic birds" in prompt and "Base every response" in prompt
    assert obs.payload["grounded"] is True and obs.payload["passages"] == [{"id": "penguin", "title": "Penguin"}]
    DemonstrationApi(model, index)(topic="penguins", k=1, grounded=False)
    assert "flightless" not in model.calls[1]["messages"][-1]["content"]


def test_normalize_ignores_case_punctuation_and_spacing():
    assert normalize("  What IS chess?! ") == normalize("what is chess") == "what is chess"


# --- question answering ---------------------------------------------------------------------
def answer_json(text: str) -> str:
    return json.dumps({"answer": text})


def test_grounded_qa_reads_passages_and_returns_them(index):
    def answer(messages, kw):
        return answer_json("Saturn" if "sixth planet" in messages[-1]["content"] else "Jupiter")

    model = FakeModel(answer)
    api = QuestionAnsweringApi(model, index, default_top_k=2)
    grounded = api(question="Which planet is famous for its rings?")
    assert grounded.payload["answer"] == "Saturn" and grounded.payload["grounded"] is True
    assert [p["id"] for p in grounded.payload["passages"]][0] == "saturn" and len(grounded.payload["passages"]) == 2
    assert grounded.text.startswith("Q: Which planet is famous for its rings?\nA: Saturn\n")
    assert "Sources: Saturn" in grounded.text
    closed = api(question="Which planet is famous for its rings?", grounded=False)
    assert closed.payload["answer"] == "Jupiter" and closed.payload["passages"] == []
    assert "Passages:" not in model.calls[-1]["messages"][-1]["content"]
    assert model.calls[0]["temperature"] == 0.0


def test_qa_asks_for_schema_constrained_json_and_accepts_a_valid_answer(index):
    model = FakeModel(['Sure! {"answer": "  Saturn  "} Hope that helps.'])
    cfg = validate(ApisConfig, {"qa": {"max_answer_chars": 30}}, "t")
    obs = build_api_registry(cfg, model=model, index=index).call("question_answering", {"question": "Rings?"})
    schema = model.calls[0]["json_schema"]
    assert schema == answer_schema(30) and schema["properties"]["answer"]["maxLength"] == 30
    assert schema["required"] == ["answer"] and schema["additionalProperties"] is False
    assert obs.ok and obs.payload["answer"] == "Saturn" and obs.payload["valid"] is True
    assert obs.payload["rejected"] == {} and obs.payload["n_rejected"] == 0 and obs.payload["parse_error"] is None
    assert obs.text.startswith("Q: Rings?\nA: Saturn")


@pytest.mark.parametrize("raw,reason", [
    ("Saturn", "malformed_output"), ('{"answer": "Sat', "malformed_output"), ('{"reply": "Saturn"}',
                                                                              "malformed_output"),
    ('{"answer": 6}', "malformed_output"), ("[1, 2]", "malformed_output"), ("", "malformed_output"),
    ('{"answer": "   "}', "empty"), ('{"answer": "?!"}', "empty"), (answer_json("Saturn " * 10), "too_long"),
    (answer_json("which planet has RINGS"), "echo")])
def test_a_bad_answer_is_a_counted_rejection_not_an_error(index, raw, reason):
    cfg = validate(ApisConfig, {"qa": {"max_answer_chars": 40}}, "t")
    reg = build_api_registry(cfg, model=FakeModel([raw]), ledger=CostLedger(), index=index)
    obs = reg.call("question_answering", {"question": "Which planet has rings?"})
    assert obs.ok and obs.payload["answer"] == "" and obs.payload["valid"] is False
    assert obs.payload["rejected"] == {reason: 1} and obs.payload["n_rejected"] == 1
    assert bool(obs.payload["parse_error"]) == (reason == "malformed_output")
    assert obs.text.startswith(f"Q: Which planet has rings?\nA: (no valid answer: {reason})")
    assert reg.error_counts == {}


def test_validate_answer_keeps_a_short_answer_that_merely_shares_words_with_the_question():
    assert validate_answer(answer_json("The rings of Saturn"), "Which planet has rings?", 200) == \
        ("The rings of Saturn", None, None)


def test_qa_top_k_argument_limits_the_passages(index):
    reg = build_api_registry(ApisConfig(), model=FakeModel([answer_json("x")]), index=index)
    obs = reg.call("question_answering", {"question": "planet sun rings glucose birds", "top_k": 1})
    assert obs.ok and len(obs.payload["passages"]) == 1


# --- factory and config ---------------------------------------------------------------------
def test_config_section_is_strict_and_typed():
    cfg = validate(ApisConfig, {"retrieval": {"backend": "rank_bm25", "top_k": 5}, "demonstrations": {"k": 2}},
                   "apis.yaml")
    assert cfg.retrieval.backend == "rank_bm25" and cfg.retrieval.method == "robertson"
    for bad in ({"retrieval": {"top_k": "five"}}, {"retrival": {}}, {"retrieval": {"backend": "faiss"}},
                {"enabled": ["web_search"]}, {"max_arg_length": 0}, {"corpus": {"source": "csv"}}):
        with pytest.raises(ConfigError):
            validate(ApisConfig, bad, "apis.yaml")


def test_registry_from_a_jsonl_corpus_persists_its_index_under_cache_dir(tmp_path):
    corpus = write_jsonl(tmp_path / "docs.jsonl", [{"doc": d.id, "body": d.text, "name": d.title} for d in DOCS])
    cfg = validate(ApisConfig, {"enabled": ["information_retrieval"], "corpus": {
        "source": "jsonl", "path": str(corpus), "text_field": "body", "title_field": "name", "id_field": "doc"}},
        "test")
    reg = build_api_registry(cfg, cache_dir=tmp_path / "cache")
    assert reg.names() == ["information_retrieval"]
    assert reg.call("information_retrieval", {"query": "Tiber empire"}).payload["passages"][0]["id"] == "rome"
    assert len(list((tmp_path / "cache" / "indexes").iterdir())) == 1


def test_model_apis_without_a_model_and_inconsistent_limits_are_config_errors(index):
    with pytest.raises(ConfigError, match="need a model"):
        build_api_registry(ApisConfig(), model=None, index=index)
    with pytest.raises(ConfigError, match="max_k"):
        build_api_registry(validate(ApisConfig, {"demonstrations": {"k": 9}}, "t"), model=FakeModel(["x"]),
                           index=index)


def test_max_arg_length_applies_to_every_string_argument(index):
    cfg = validate(ApisConfig, {"max_arg_length": 40}, "t")
    reg = build_api_registry(cfg, model=FakeModel(['{"pairs": []}']), index=index)
    long = "a question about planets " * 3
    for name, key in [("information_retrieval", "query"), ("demonstration_generation", "topic"),
                      ("question_answering", "question")]:
        assert reg.get(name).args[key].max_length == 40
        assert "exceeds the limit of 40" in reg.call(name, {key: long}).error
