"""Pieces of the self-evolving benchmark generator (the class: ads/generators/self_evolving.py).

evolve_config: the YAML keys; seeds: the starting pool, cut from real data; prompts: task/judge
schemas and messages; curriculum: which category and difficulty to ask for next, EMA warm
start; attempt: one attempt, from the request to its event (the work function); task_judge:
the judge of a task and its answer; benchmark_report: summary figures, plots, terminal report;
command_line: the seed's flag-style CLI; env: its `.env` endpoint settings.
"""
