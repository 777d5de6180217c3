"""Pieces of the self-evolving benchmark generator (ads/generators/self_evolving.py).

seeds: the starting pool, cut from real data; prompts: task/judge schemas and messages;
curriculum: which category and difficulty to ask for next; warm: EMA warm start.
"""
