"""Active Data Search, the flagship method: an optimizer model acquires a training dataset per task.

Modules, in the order data flows: instruction_sets (tasks = instruction sets from real data),
planning (optimizer prompt with the weakness signal, exemplar memory, baseline plans),
training_data (typed, deduplicated rows per task), policy (in-context update and scoring),
loop (training iterations, reward, rejection sampling), evaluation (held-out instructions,
baselines at matched cost), significance (bootstrap intervals, sign tests), lora (the LoRA
options), outputs (the runner: report, plots, exported datasets).
"""
