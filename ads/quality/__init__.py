"""Quality toolkit shared by every generator: validators, judge, novelty, diversity, EMA.

Importing this package is cheap: the MiniLM embedder and datasketch load on first use.
"""
from ads.quality.diversity import (distinct_n, diversity_report, embedding_spread, mean_pairwise_jaccard_distance,
                                   normalized_entropy, shannon_entropy)
from ads.quality.ema import EMATracker
from ads.quality.judge import Criterion, Judge, JudgeConfig, Judgment
from ads.quality.novelty import NoveltyCheck, NoveltyFilter
from ads.quality.validator_specs import ValidatorSpec, build_validators
from ads.quality.validators import SuiteResult, ValidationResult, Validator, ValidatorSuite, validation_counts

__all__ = [
    "Criterion", "EMATracker", "Judge", "JudgeConfig", "Judgment", "NoveltyCheck", "NoveltyFilter", "SuiteResult",
    "ValidationResult", "Validator", "ValidatorSpec", "ValidatorSuite", "build_validators", "distinct_n",
    "diversity_report", "embedding_spread", "mean_pairwise_jaccard_distance", "normalized_entropy",
    "shannon_entropy", "validation_counts",
]
