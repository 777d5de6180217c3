"""Active Data Search, the flagship method: an optimizer model acquires a training dataset per task.

Modules, in the order data flows: instruction_sets (tasks = instruction sets from real data),
planning (optimizer prompt with the weakness signal, exemplar memory, baseline plans),
api_trajectories (the plan's JSON schema, parsing, execution), training_data (typed,
deduplicated rows per task), policy (in-context update and scoring), loop (the method's
config and the models a work item runs against), acceptance (reward-based rejection sampling,
iteration metrics), evaluation (held-out instructions, baselines at matched cost),
significance (bootstrap intervals, sign tests), lora and lora_training (the LoRA options),
experiment (ADSGenerator: the rounds, records and resume on the Generator contract), outputs
(`run()`, the report, plots, exported datasets).
"""
