"""SIGKILL at random points, then --resume: no record lost or duplicated, ledger consistent, and
the final outputs equal those of an uninterrupted run with the same seed (see killing.py).

CI runs one or two kills per generator (no separate replay run); `pytest -m slow` runs ten each,
after checking that a plain run from the cached calls reproduces the reference, and adds the
slower variants (bandit with the downstream reward, tool use with the inline judge).
"""
from __future__ import annotations

import pytest

from killing import GeneratorSpec, kill_and_resume

BANDIT = ["configs/recipes/wiki_topic_texts.yaml", "--set", "recipe.target_count=3", "--set", "loop.batch_size=2",
          "--set", "loop.max_iterations=3", "--set", "loop.max_tokens=60", "--set", "model.n_threads=1"]
# tokens: what an attempt cost (0 when it replayed from the cache); plots: paths in the run folder
BANDIT_VOLATILE = {"tokens", "ledger", "resumed_from_items", "plots"}

TOOL_USE = ["configs/tool_use.yaml", "--set", "n=2", "--set", "mode=sequential", "--set", "min_steps=2",
            "--set", "max_steps=2", "--set", "candidates=2", "--set", "max_repairs=0", "--set", "judge_attempts=1",
            "--set", "max_arg_attempts=1", "--set", "model.name=smollm2-135m", "--set", "model.n_ctx=2048",
            "--set", "model.n_threads=1"]

SPECS = {
    "ads": GeneratorSpec(
        "ads", ["configs/default.yaml", "--set", "tasks.families={wiki: 1, gsm8k: 1}",
                "--set", "tasks.test_families={wiki: 1, gsm8k: 0}", "--set", "tasks.instructions_per_task=3",
                "--set", "tasks.train_instructions=2", "--set", "loop.iterations=1",
                "--set", "policy.name=smollm2-135m", "--set", "optimizer.name=smollm2-135m",
                "--set", "loop.reasoning_max_tokens=64", "--set", "apis.retrieval.top_k=2",
                "--set", "apis.retrieval.passage_chars=500", "--set", "loop.trajectories_per_task=1"],
        files=["evaluation_results.json", "training_metrics.json"], volatile={"total_tokens"}),
    # prose arms at three temperatures, epsilon-greedy router, novelty validator (stateful)
    "bandit": GeneratorSpec(
        "bandit", [*BANDIT, "--set", "reward.downstream.enabled=false", "--set", "reward.downstream.report=false"],
        files=["state.json", "summary.json"],
        volatile=BANDIT_VOLATILE),
    # ... and the downstream reward: a classifier retrained on the accepted items after every batch,
    # its previous accuracy read back from the iteration log on resume (slow: minutes per run here)
    "bandit_downstream": GeneratorSpec(
        "bandit_downstream", [*BANDIT, "--set", "reward.downstream.validation_size=200"],
        files=["state.json", "summary.json"],
        volatile=BANDIT_VOLATILE, ci=False),
    # two 2-step conversations; the steering memory (MiniLM) and the novelty pool are rebuilt on resume
    "tool_use": GeneratorSpec(
        "tool_use", [*TOOL_USE, "--set", "evaluate=false"], files=["evaluation_report.json", "diversity.json"]),
    # ... judged inline (long prompts: minutes per reference run here)
    "tool_use_judged": GeneratorSpec(
        "tool_use_judged", TOOL_USE,
        files=["evaluation_report.json", "diversity.json"], ci=False),
    # lenient gates (no score floor, no instruction-reuse or judge novelty veto) so that a 135M model
    # gets tasks accepted: the accepted items feed the novelty pool, the EMAs and the demo pool
    "self_evolving": GeneratorSpec(
        "self_evolving", ["configs/self_evolving.yaml", "--set", "accept_target=2", "--set", "max_attempts=5",
                          "--set", "min_score=0", "--set", "instruction_sim_threshold=null",
                          "--set", "judge_novelty_veto=false", "--set", "demo_k=2", "--set", "ans_max_tokens=40",
                          "--set", "judge_rationale_chars=60", "--set", "judge_attempts=1",
                          "--set", "seeds.per_category=1", "--set", "generator.n_threads=1"],
        keep={"run_logs.jsonl": lambda r: "attempt" in r},
        files=["seeds.json"]),
    "perspectives": GeneratorSpec(
        "perspectives", ["configs/perspectives/summarization_wiki.yaml", "--set", "data_config.sample_size=3",
                         "--set", "model_config.n_threads=1", "--set", "agent_perspectives=["
                         "{condition: Original, reading: null, strategy: 'Summarize the following article in one "
                         "sentence.'}, {condition: Careful Reader, reading: 'List the two most important facts in the "
                         "following article.', strategy: 'Using your notes, summarize the following article in one "
                         "sentence.'}]"],
        files=["dataset.json"],
        # token counts of calls made in this process (0 for a call replayed from the cache)
        volatile={"prompt_tokens", "completion_tokens", "total_tokens", "cached_calls", "replayed_from_cache_tokens",
                  "quality_retry_prompt_tokens", "completion_tokens_computed"}),
}


def test_every_generator_has_a_kill_loop_in_ci():
    """CONTRIBUTING: every generator registered with `main.py generate` is killed and resumed here."""
    from ads.harness.kinds import kinds

    covered = {s.kind for s in SPECS.values() if s.ci}
    assert set(kinds()) <= covered, sorted(set(kinds()) - covered)


@pytest.mark.parametrize("name", sorted(n for n, s in SPECS.items() if s.ci))
def test_a_few_kills_lose_and_repeat_nothing(name, tmp_path):
    spec = SPECS[name]
    kill_and_resume(spec, tmp_path, kills=spec.ci_kills, replay=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SPECS))
def test_ten_kills_lose_and_repeat_nothing(name, tmp_path):
    kill_and_resume(SPECS[name], tmp_path, kills=10, seed=1)
