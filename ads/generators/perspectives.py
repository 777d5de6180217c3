"""Multi-perspective generation: each input answered by several configured agent perspectives.

For translation, summarization or peer review, every input (a sentence, an article, a paper)
gets one response per perspective: faithful ones and deliberately manipulated ones ("Low
Effort", "Fabricated Detail", ...), for downstream evaluation experiments. A perspective may
have a reading step (notes taken on the input) that runs before its strategy step.

Run it three ways:
* `main.py generate configs/perspectives/summarization_wiki.yaml [--set test=true] [--resume]`;
* `python -m ads.generators.perspectives CONFIG [--test] [--resume]` (also `--config CONFIG`, the
  original tool's spelling; seed-style JSON configs without `kind` load as they are);
* `run_pipeline(config, test=True)` -> summary dict, or the original object API
  `PerspectivesPipeline(config).run()` / `await PerspectivesPipeline(config).generate_dataset()`.

This module is the name the registry, the docs and the original tool's users know; the code
lives in ads/generators/persp/, one job per module:
settings.py (the config), inputs.py (input files and built-in data), provider.py (which
backend serves the model), engine.py (one input x perspective unit: prompts, retries, checks),
unit_generator.py (the Generator the runner drives: units, resume checks, records),
dataset_file.py (dataset.json from the stored records), run_report.py (plots and the table),
entry_points.py (run_pipeline, PerspectivesPipeline and this command line).

Outputs in the run folder: `dataset.json` (the seed's format: task_type, task_description,
agent_perspectives, tasks[{context, responses, preparations}], metadata{model_config,
api_provider, data_config, generation_time, token_usage, api_calls, estimated_tokens}, plus
per-response statuses, an estimate-vs-actual check and quality figures), `responses.jsonl`
(one record per input x perspective, appended as each finishes; `--resume` after a kill skips
what is there and the dataset is assembled from it), `inputs.json`, `estimate.json`, the
ledger/metrics/summary files and two PNG plots.
"""
from __future__ import annotations

import sys

from ads.generators.persp.entry_points import PerspectivesPipeline, load_perspectives_config, main, run_pipeline
from ads.generators.persp.settings import PerspectivesConfig
from ads.generators.persp.unit_generator import PerspectivesGenerator, run

__all__ = ["PerspectivesConfig", "PerspectivesGenerator", "PerspectivesPipeline", "load_perspectives_config", "main",
           "run", "run_pipeline"]

if __name__ == "__main__":
    sys.exit(main())
