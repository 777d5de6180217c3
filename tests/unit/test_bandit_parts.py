"""Recipe parsing, PCFG templates, routers and rewards of the bandit generator, without a model."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from ads.config import ConfigError, load_config, validate
from ads.generators.bandit.arms import build_arms, clean_text, instruction
from ads.generators.bandit.pcfg import PCFG, GrammarError, render, slots_of
from ads.generators.bandit.recipe import decoding_schema, extract_context
from ads.generators.bandit.reward import RewardConfig, batch_reward, downstream_batch_reward, item_reward
from ads.generators.bandit.router import FeedbackState, Router, RouterConfig
from ads.generators.bandit_recipes import BanditConfig
from ads.quality.validator_specs import build_validators
from ads.quality.validators import ValidatorSuite

RECIPES = Path(__file__).resolve().parents[2] / "configs" / "recipes"


# --- recipes and context ------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_loads_and_yields_arms(path):
    cfg = load_config(BanditConfig, path)
    ctx = extract_context(cfg.recipe, cfg.validators)
    arms = build_arms(ctx, cfg.arms.profiles, cfg.arms.include)
    assert {a.family for a in arms} == set(ctx.arm_families)
    assert ctx.output_schema["properties"]["text"]["type"] == "string"


def test_at_least_three_recipes_one_topic_labelled_with_downstream_reward():
    cfgs = [load_config(BanditConfig, p) for p in RECIPES.glob("*.yaml")]
    assert len(cfgs) >= 3
    topic = [c for c in cfgs if c.reward.downstream.enabled]
    assert topic and "topic" in topic[0].recipe.facets
    assert any(c.recipe.grammar is not None for c in cfgs)


def test_shipped_recipes_use_the_seeds_validation_layers():
    """Seed 000: rule-based checks, model-based checks (similarity, semantic validation), diversity
    scoring and an LLM judge, configured per recipe in its validators block."""
    cfgs = {p.name: load_config(BanditConfig, p) for p in RECIPES.glob("*.yaml")}
    for name, c in cfgs.items():
        types = {v.type for v in c.validators}
        assert types & {"length", "regex", "json_schema"}, name
        assert types & {"embedding_similarity", "embedding_spread"}, name  # model-based
        assert types & {"distinct_n", "novelty", "embedding_spread"}, name  # diversity
    judged = [n for n, c in cfgs.items() if {v.type for v in c.validators} & {"judge_score", "judge_faithfulness"}]
    assert judged and all(cfgs[n].models.judge is not None for n in judged)


def _recipe(**over):
    base = {"kind": "bandit", "recipe": {"domain": "d", "task": "t", "target_count": 3}}
    base["recipe"].update(over)
    return base


def test_grammar_presence_adds_templater_arms_and_validators_become_prompt_requirements():
    data = _recipe(grammar={"start": "s", "rules": {"s": ["A {x}."]}})
    data["validators"] = [{"type": "length", "min_words": 5, "max_words": 9}]
    cfg = validate(BanditConfig, data, "t")
    ctx = extract_context(cfg.recipe, cfg.validators)
    assert ctx.arm_families == ["naive", "templater"]
    assert "The text is 5 to 9 words long." in ctx.requirements
    names = [a.name for a in build_arms(ctx, {"cool": 0.1, "hot": 1.0})]
    assert names == ["naive:cool", "naive:hot", "templater:cool", "templater:hot"]
    assert [a.name for a in build_arms(ctx, {"cool": 0.1, "hot": 1.0}, ["templater"])] == ["templater:cool",
                                                                                           "templater:hot"]


@pytest.mark.parametrize("bad, words", [
    (_recipe(grammar={"start": "s", "rules": {"s": ["<missing>"]}}), "not defined"),
    (_recipe(grammar={"start": "s", "rules": {"s": ["{x}"]}, "json_schema": {"type": "object", "properties": {}}}),
     "lacks properties"),
    (_recipe(format={"fields": {"body": {}}}), "text"),
    ({**_recipe(), "routr": {}}, "unknown key"),
    ({**_recipe(), "arms": {"profiles": {"hot": 9.0}}}, "temperatures"),
])
def test_bad_recipes_are_config_errors_naming_the_problem(bad, words):
    with pytest.raises(ConfigError, match=words):
        validate(BanditConfig, bad, "recipe.yaml")


def test_dependent_facets_draw_a_coherent_pair_and_the_task_names_them():
    data = _recipe(task="Write about {subject}.", facets={
        "topic": ["A", "B"], "subject": {"depends_on": "topic", "values": {"A": ["a1", "a2"], "B": ["b1"]}}})
    cfg = validate(BanditConfig, data, "t")
    ctx = extract_context(cfg.recipe, cfg.validators)
    rng = random.Random(0)
    pairs = {tuple(sorted(ctx.draw_facets(rng).items())) for _ in range(200)}
    assert pairs == {(("subject", s), ("topic", t)) for t, s in (("A", "a1"), ("A", "a2"), ("B", "b1"))}
    lines = instruction(ctx, {"topic": "B", "subject": "b1"})
    assert lines[0] == "Write about b1." and "Topic: B." in lines and not any(ln.startswith("Subject") for ln in lines)
    assert ctx.model_fields() == ["text"] and ctx.label_facet == "topic"


@pytest.mark.parametrize("facets, task, words", [
    ({"topic": ["A"], "s": {"depends_on": "nope", "values": {"A": ["x"]}}}, "t", "not a plain facet"),
    ({"topic": ["A", "B"], "s": {"depends_on": "topic", "values": {"A": ["x"]}}}, "t", "no values for topic"),
    ({"topic": ["A"], "s": {"depends_on": "topic", "values": {"A": ["x"], "Z": ["y"]}}}, "t", "unknown topic"),
    ({"topic": ["A"]}, "About {subject}.", "not facets"),
])
def test_bad_facets_are_config_errors(facets, task, words):
    with pytest.raises(ConfigError, match=words):
        validate(BanditConfig, _recipe(task=task, facets=facets), "recipe.yaml")


def test_decoding_schema_drops_descriptions_and_turns_small_int_ranges_into_enums():
    schema = {"type": "object", "properties": {
        "text": {"type": "string", "minLength": 5, "maxLength": 700, "description": "prose"},
        "tags": {"type": "array", "maxItems": 3, "items": {"type": "string", "maxLength": 9}},
        "rating": {"type": "integer", "minimum": 1, "maximum": 5},
        "n": {"type": "integer", "minimum": 1}}, "required": ["text"]}
    d = decoding_schema(schema)
    assert d["properties"]["text"] == {"type": "string", "minLength": 5, "maxLength": 700}
    assert d["properties"]["tags"] == {"type": "array", "maxItems": 3, "items": {"type": "string", "maxLength": 9}}
    assert d["properties"]["rating"] == {"enum": [1, 2, 3, 4, 5]}
    assert d["properties"]["n"] == {"type": "integer", "minimum": 1} and d["required"] == ["text"]


@pytest.mark.parametrize("raw, cut, want", [
    ('Text: "The cello is a bowed string instrument."', False, "The cello is a bowed string instrument."),
    ("One sentence. Another one that was cut mid", True, "One sentence."),
    ("no sentence end at all", True, None),
    ("   ", False, None),
])
def test_clean_text_strips_labels_quotes_and_cut_sentences(raw, cut, want):
    text, err = clean_text(raw, cut)
    assert text == want and (err is None) == (want is not None)


@pytest.mark.parametrize("subject, text, ok", [
    ("the Pythagorean theorem", "Pythagoras' theorem relates the sides of a right triangle.", True),
    ("Confucius's teachings", "Confucianism is built on the teachings of Confucius.", True),
    ("volcanoes", "Volcanic eruptions shape the land.", True),
    ("the French Revolution", "The world is a wondrous place full of wonders.", False),
    ("Leonardo da Vinci", "Leonardo painted the Mona Lisa.", True),  # half of the content words is enough
    ("the Hundred Years' War", "Wars shaped medieval Europe.", False),  # 1 of 3
])
def test_facet_mention_check_accepts_inflections_and_rejects_drift(subject, text, ok):
    from ads.generators.bandit.checks import FacetMentionValidator

    r = FacetMentionValidator("subject").check({"text": text, "subject": subject})
    assert r.name == "mentions_subject" and r.passed is ok
    assert FacetMentionValidator("subject").check({"text": text}).passed is False  # no facet on the item


def test_mention_facets_must_be_facets_and_join_the_suite(tmp_path):
    with pytest.raises(ConfigError, match="mention_facets"):
        validate(BanditConfig, _recipe(format={"mention_facets": ["subject"]}), "r.yaml")
    cfg = validate(BanditConfig, _recipe(format={"mention_facets": ["topic"]}, facets={"topic": ["x"]}), "r.yaml")
    ctx = extract_context(cfg.recipe, cfg.validators)
    assert ctx.mention_facets == ["topic"] and "The text names the topic ({topic})." in ctx.requirements


# --- PCFG ---------------------------------------------------------------------------------------
def test_pcfg_follows_rule_weights_and_records_its_choices():
    g = PCFG("s", {"s": [("<a>", 0.8), ("<b>", 0.2)], "a": [("A {x}.", 1)], "b": [("B {y} {x}.", 1)]})
    rng = random.Random(0)
    outs = [g.sample(rng) for _ in range(2000)]
    share_a = sum(o.template.startswith("A") for o in outs) / len(outs)
    assert 0.76 < share_a < 0.84
    assert outs[0].choices[0] in ("s#0", "s#1")
    assert slots_of("B {y} {x} {y}.") == ["y", "x"]


def test_pcfg_rejects_unbounded_recursion_and_bad_weights():
    g = PCFG("s", {"s": [("x <s>", 1.0)]}, max_depth=5)
    with pytest.raises(GrammarError, match="max_depth"):
        g.sample(random.Random(0))
    with pytest.raises(GrammarError, match="weight"):
        PCFG("s", {"s": [("x", 0.0)]})
    with pytest.raises(GrammarError, match="appear in no template"):
        PCFG("s", {"s": [("{x}", 1.0)]}, {"y": {"type": "string"}})


def test_schema_is_derived_from_the_template_slots():
    g = PCFG("s", {"s": [("{name} got {stars}/5 from {who}.", 1.0)]}, {"stars": {"type": "integer", "minimum": 1}})
    schema = g.derive_schema("{name} got {stars}/5 from {who}.", exclude=["who"])
    assert schema["required"] == ["name", "stars"]
    assert schema["properties"]["stars"] == {"type": "integer", "minimum": 1}
    assert schema["properties"]["name"]["type"] == "string" and schema["additionalProperties"] is False


def test_render_fills_slots_and_avoids_double_punctuation():
    assert render("I liked {pro}. Rating: {r}/5.", {"pro": ' "the grip." ', "r": 4}) == "I liked the grip. Rating: 4/5."
    assert render("{a} and {b}", {"a": "x"}, keep_missing=True) == "x and {b}"


# --- router ---------------------------------------------------------------------------------------
def test_epsilon_decays_to_its_floor():
    r = Router(RouterConfig(epsilon=0.5, epsilon_decay=0.5, min_epsilon=0.1))
    assert [r.epsilon(i) for i in range(4)] == [0.5, 0.25, 0.125, 0.1]


def test_warmup_plays_every_arm_once_then_exploits_the_best():
    arms = ["a", "b", "c"]
    st = FeedbackState(arms)
    r = Router(RouterConfig(epsilon=0.0, min_epsilon=0.0), seed=3)
    first = []
    for reward in (0.2, 0.9, 0.5):
        c = r.choose(st)
        assert c.reason == "warmup"
        first.append(c.arm)
        st.update(c.arm, {"a": 0.2, "b": 0.9, "c": 0.5}[c.arm], 1)
    assert sorted(first) == arms
    c = r.choose(st)
    assert (c.arm, c.reason) == ("b", "exploit")


@pytest.mark.parametrize("strategy", ["epsilon_greedy", "ucb1", "thompson"])
def test_the_better_arm_ends_with_most_pulls_on_a_controlled_bandit(strategy):
    means = {"conservative": 0.3, "balanced": 0.75, "creative": 0.5}
    env = random.Random(7)
    st = FeedbackState(list(means))
    r = Router(RouterConfig(strategy=strategy, ucb_c=0.5), seed=1)
    for _ in range(80):
        arm = r.choose(st).arm
        st.update(arm, float(env.random() < means[arm]), 1)
    assert max(st.pulls, key=st.pulls.get) == "balanced"
    assert st.pulls["balanced"] > 40


def test_router_choices_replay_identically_from_a_saved_state():
    st = FeedbackState(["a", "b"])
    r = Router(RouterConfig(), seed=5)
    for i in range(6):
        st.update(r.choose(st).arm, 0.1 * i, 1)
    saved = FeedbackState.from_dict(st.to_dict())
    assert [Router(RouterConfig(), seed=5).choose(saved).arm for _ in range(3)] == [r.choose(st).arm] * 3
    assert saved.to_dict() == st.to_dict()
    with pytest.raises(ValueError):
        st.update("a", float("nan"), 0)


def test_thompson_posterior_counts_each_reward_as_a_fractional_success():
    st = FeedbackState(["a", "b"])
    for r in (1.0, 0.25, 0.5):
        st.update("a", r, 1)
    assert st.beta_posterior("a") == (1 + 1.75, 1 + 1.25)  # alpha0 + sum r, beta0 + sum (1 - r)
    assert st.beta_posterior("b") == (1.0, 1.0)  # never pulled: the prior
    assert st.beta_posterior("a", alpha0=2, beta0=3, weight=4) == (2 + 4 * 1.75, 3 + 4 * 1.25)
    st.update("b", 1.7, 1)  # a reward outside [0, 1] is clamped, so the Beta stays defined
    assert st.beta_posterior("b") == (2.0, 1.0)


def test_thompson_concentrates_on_the_better_arm_of_a_fractional_reward_bandit():
    """Rewards are batch means in [0, 1] (not coin flips): noisy fractions around each arm's mean."""
    means = {"cold": 0.35, "warm": 0.6, "hot": 0.5}
    env = random.Random(11)
    st = FeedbackState(list(means))
    r = Router(RouterConfig(strategy="thompson"), seed=2)
    late = []
    for i in range(300):
        c = r.choose(st)
        if st.iteration >= len(means):
            assert c.reason == "thompson" and set(c.samples) == set(means)
            assert c.arm == max(c.samples, key=c.samples.get)  # the arm with the highest posterior draw
            assert all(0.0 <= v <= 1.0 for v in c.samples.values())
        reward = min(1.0, max(0.0, env.gauss(means[c.arm], 0.15)))
        st.update(c.arm, reward, 1)
        if i >= 200:
            late.append(c.arm)
    assert max(st.pulls, key=st.pulls.get) == "warm"
    assert late.count("warm") / len(late) > 0.7, st.pulls
    assert st.pulls["cold"] < 40


def test_thompson_weight_narrows_the_posterior_and_exploits_sooner():
    means = {"a": 0.45, "b": 0.55}

    def pulls_of_better(weight: float) -> int:
        env, st = random.Random(3), FeedbackState(list(means))
        r = Router(RouterConfig(strategy="thompson", thompson_weight=weight), seed=4)
        for _ in range(150):
            arm = r.choose(st).arm
            st.update(arm, min(1.0, max(0.0, env.gauss(means[arm], 0.05))), 1)
        return st.pulls["b"]

    assert pulls_of_better(20.0) > pulls_of_better(1.0)


def test_thompson_choices_replay_identically_from_a_saved_state():
    st = FeedbackState(["a", "b", "c"])
    r = Router(RouterConfig(strategy="thompson"), seed=5)
    for i in range(8):
        st.update(r.choose(st).arm, (0.1 * i) % 1, 1)
    saved = FeedbackState.from_dict(json.loads(json.dumps(st.to_dict())))
    again = Router(RouterConfig(strategy="thompson"), seed=5).choose(saved)
    assert (again.arm, again.samples) == (r.choose(st).arm, r.choose(st).samples)


# --- rewards ------------------------------------------------------------------------------------
def test_item_reward_orders_malformed_below_rejected_below_accepted():
    suite = ValidatorSuite(build_validators([{"type": "length", "min_words": 3}, {"type": "distinct_n", "n": 1,
                                                                                 "min": 0.5, "min_ngrams": 2},
                                             {"type": "regex", "pattern": "ok"}]))
    cfg = RewardConfig(partial_credit=0.5, quality_weight=0.3)
    assert item_reward(cfg, suite, None) == 0.0
    rejected = item_reward(cfg, suite, suite.run("one two three four"))  # passes length + distinct, fails regex
    assert rejected == pytest.approx(0.5 * 2 / 3)
    accepted = item_reward(cfg, suite, suite.run("ok five six seven"))
    assert accepted == pytest.approx(0.7 + 0.3 * 1.0)
    repetitive = item_reward(cfg, suite, suite.run("ok ok ok go go"))  # distinct-1 = 0.4 < 0.5 -> rejected
    assert repetitive < accepted


def test_batch_reward_mixes_in_the_downstream_gain():
    cfg = RewardConfig.model_validate({"downstream": {"enabled": True, "weight": 0.5, "gain_scale": 10.0}})
    assert batch_reward(cfg, [1.0, 0.0], None) == 0.5
    assert downstream_batch_reward(cfg.downstream, 0.30, 0.35, accepted=2) == 1.0
    assert downstream_batch_reward(cfg.downstream, 0.30, 0.29, accepted=2) == pytest.approx(0.4)
    assert downstream_batch_reward(cfg.downstream, 0.30, 0.40, accepted=0) == 0.0
    assert downstream_batch_reward(cfg.downstream, None, 0.05, accepted=3) == 0.5  # first data: no gain to measure
    assert batch_reward(cfg, [1.0, 0.0], 0.4) == pytest.approx(0.45)


@pytest.mark.parametrize("slots, ok", [
    ({"product": "Abyss Glide 2", "pro": "soft skirt", "con": "strap slips"}, True),
    ({"product": "Abyss Glide 2", "pro": "Abyss Glide 2", "con": "strap slips"}, False),  # pasted twice
    ({"product": "Abyss Glide 2", "pro": "the abyss glide 2!", "con": "strap"}, False),  # one inside another
    ({"product": "Orca", "pro": "big", "con": "big toe strap"}, True),  # short values may overlap by chance
    ({"rating": 4, "pro": "warm", "con": "tight"}, True),  # non-text slots are ignored
])
def test_distinct_slots_check_rejects_a_value_pasted_into_several_slots(slots, ok):
    from ads.generators.bandit.checks import DistinctSlotsValidator

    assert DistinctSlotsValidator().check({"text": "x", "slots": slots}).passed is ok
    assert DistinctSlotsValidator().check({"text": "an LLM-arm item"}).passed is True


# --- downstream reward for any labelled recipe ------------------------------------------------------
WORDS = {"north": "glacier snow pine reindeer frost tundra", "south": "desert cactus sand heat dune camel",
         "east": "river rice monsoon paddy bamboo delta"}


def labelled_file(tmp_path: Path, n_per_label: int = 20, bad_line: str | None = None) -> Path:
    rng = random.Random(0)
    rows = []
    for label, words in WORDS.items():
        for _ in range(n_per_label):
            rows.append({"body": " ".join(rng.sample(words.split(), 4)) + " land", "region": label.upper()})
    rng.shuffle(rows)
    lines = [json.dumps(r) for r in rows] + ([bad_line] if bad_line else [])
    p = tmp_path / "eval.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_labelled_jsonl_scorer_rewards_texts_that_carry_their_label(tmp_path):
    from ads.generators.bandit.reward import DownstreamConfig, make_scorer

    cfg = DownstreamConfig(task="labelled_jsonl", eval_path=str(labelled_file(tmp_path)), label_field="region",
                           eval_text_field="body", validation_size=30)
    scorer = make_scorer(cfg, seed=0)
    assert len(scorer.validation[0]) == 30 and len(scorer.heldout[0]) == 30
    assert scorer.labels == ["EAST", "NORTH", "SOUTH"]
    good = [{"text": f"{WORDS[lbl].split()[i % 6]} {WORDS[lbl].split()[(i + 1) % 6]}", "region": lbl}
            for lbl in WORDS for i in range(6)]  # lower-case labels match the file's case-insensitively
    shuffled = [{**g, "region": list(WORDS)[(list(WORDS).index(g["region"]) + 1) % 3]} for g in good]
    assert scorer.accuracy(good) > 0.9 > 0.1 > scorer.accuracy(shuffled)
    rep = scorer.report(good + [{"text": "x", "region": "west"}])
    assert rep["synthetic"] == {"used": 18, "unknown_label_or_empty": 1} and rep["heldout_n"] == 30
    assert rep["synthetic_accuracy"] > 0.9 and rep["real_upper_bound"] > 0.9 and rep["majority_accuracy"] < 0.5
    assert "eval.jsonl" in rep["source"]


@pytest.mark.parametrize("bad, words", [
    ({"task": "labelled_jsonl"}, "needs eval_path"),
    ({"task": "wiki_topic", "eval_path": "x.jsonl"}, "eval_path is for task labelled_jsonl"),
    ({"task": "sentiment"}, "labelled_jsonl"),
])
def test_bad_downstream_configs_are_config_errors(bad, words):
    with pytest.raises(ConfigError, match=words):
        validate(RewardConfig, {"downstream": bad}, "recipe.yaml")


@pytest.mark.parametrize("bad_line, words", [('{"body": "text"}', "needs a non-empty 'body' and 'region'"),
                                             ("not json", "not JSON")])
def test_a_bad_labelled_file_is_a_config_error_naming_the_line(tmp_path, bad_line, words):
    from ads.generators.bandit.reward import DownstreamConfig, make_scorer

    p = labelled_file(tmp_path, bad_line=bad_line)
    cfg = DownstreamConfig(task="labelled_jsonl", eval_path=str(p), label_field="region", eval_text_field="body")
    with pytest.raises(ConfigError, match=words) as e:
        make_scorer(cfg)
    assert ":61:" in str(e.value)
    with pytest.raises(ConfigError, match="is not a file"):
        make_scorer(DownstreamConfig(task="labelled_jsonl", eval_path=str(tmp_path / "missing.jsonl")))


def test_model_roles_live_under_models_and_the_older_keys_still_load(tmp_path):
    """One shape for every generator (models: {role: ...}); `model:`/`judge:` are read as before."""
    recipe = {"domain": "d", "task": "Write about {x}.", "facets": {"x": ["a", "b"]}, "target_count": 2}
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump({"kind": "bandit", "recipe": recipe,
                                   "models": {"generator": {"name": "smollm2-135m", "n_threads": 2},
                                              "judge": {"name": "qwen"}}}))
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump({"kind": "bandit", "recipe": recipe, "model": {"name": "smollm2-135m",
                                                                                 "n_threads": 2},
                                   "judge": {"name": "qwen"}}))
    a, b = load_config(BanditConfig, new), load_config(BanditConfig, old)
    assert a == b and a.models.generator.n_threads == 2 and a.models.judge.name == "qwen"
    # a partial override of the older key merges into the role (what the kill-loop specs pass)
    c = load_config(BanditConfig, new, ["model.n_threads=1"])
    assert c.models.generator.n_threads == 1 and c.models.generator.name == "smollm2-135m"
    # ... and a whole value replaces the role's (--set judge=null turns the judge off)
    assert load_config(BanditConfig, new, ["judge=null"]).models.judge is None
    assert load_config(BanditConfig, old, ["models.judge.name=other"]).models.judge.name == "other"
