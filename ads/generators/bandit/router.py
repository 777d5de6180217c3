"""Routers over arms, and the feedback state they learn into.

`FeedbackState` is the per-job state the seed calls LocalFeedbackState: the iteration
counter, and per arm the pulls, summed reward and last reward. It is a plain dict on disk
(state.json) and is rebuilt exactly by replaying the iteration log, so a killed job
resumes where it stopped.

Routers:
* `EpsilonGreedy`: with probability epsilon a uniformly random arm, else the arm with the
  best mean reward (ties broken at random); epsilon decays per iteration,
  eps_t = max(min_epsilon, epsilon * epsilon_decay ** t).
* `UCB1`: mean + c * sqrt(2 ln N / n_arm).
* Thompson sampling (`strategy: thompson`): one draw per arm from a Beta posterior over its mean reward, play
  the arm with the highest draw. Rewards here are batch means in [0, 1], not coin flips,
  so each reward r is counted as a fractional Bernoulli outcome: alpha += r, beta += 1 - r
  (scaled by `thompson_weight`). Chosen over the Bernoulli trick (flip a coin with p = r and
  count the flip) because the posterior is then a pure function of the logged rewards,
  alpha = alpha0 + w * reward_sum, beta = beta0 + w * (pulls - reward_sum), so the state the
  other routers already persist (pulls, reward sums) holds it and replaying the iteration log
  rebuilds it exactly; the coin flip would add noise the reward does not have and a second
  random stream to persist. The posterior mean is the smoothed mean reward.
All first play every arm `warmup_pulls` times, in a seeded random order, because a mean
of nothing says nothing. Randomness comes from a generator seeded per iteration, so a
resumed run makes the same choices it would have made.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import Field

from ads.config import Strict


class RouterConfig(Strict):
    strategy: Literal["epsilon_greedy", "ucb1", "thompson"] = "epsilon_greedy"
    epsilon: float = Field(0.5, ge=0, le=1)
    epsilon_decay: float = Field(0.85, gt=0, le=1)
    min_epsilon: float = Field(0.05, ge=0, le=1)
    ucb_c: float = Field(1.0, ge=0)
    warmup_pulls: int = Field(1, ge=0, le=10)
    # thompson: Beta(alpha0, beta0) prior; each reward r adds weight * r successes and weight * (1 - r)
    # failures (weight > 1 narrows the posterior faster: a batch mean is less noisy than one coin flip)
    thompson_alpha0: float = Field(1.0, gt=0)
    thompson_beta0: float = Field(1.0, gt=0)
    thompson_weight: float = Field(1.0, gt=0)


@dataclass
class FeedbackState:
    arms: list[str]
    iteration: int = 0
    pulls: dict[str, int] = field(default_factory=dict)
    reward_sum: dict[str, float] = field(default_factory=dict)
    last_reward: dict[str, float] = field(default_factory=dict)
    collected: int = 0

    def __post_init__(self) -> None:
        for a in self.arms:
            self.pulls.setdefault(a, 0)
            self.reward_sum.setdefault(a, 0.0)

    def mean(self, arm: str) -> float | None:
        n = self.pulls[arm]
        return self.reward_sum[arm] / n if n else None

    def update(self, arm: str, reward: float, accepted: int) -> None:
        if arm not in self.pulls:
            raise KeyError(f"unknown arm {arm!r}")
        if not (isinstance(reward, (int, float)) and math.isfinite(reward)):
            raise ValueError(f"reward must be a finite number, got {reward!r}")
        self.pulls[arm] += 1
        self.reward_sum[arm] += float(reward)
        self.last_reward[arm] = float(reward)
        self.collected += int(accepted)
        self.iteration += 1

    def beta_posterior(self, arm: str, alpha0: float = 1.0, beta0: float = 1.0,
                       weight: float = 1.0) -> tuple[float, float]:
        """Beta(alpha, beta) over the arm's mean reward, each reward counted as a fractional success."""
        n = self.pulls[arm]
        s = min(max(self.reward_sum[arm], 0.0), float(n))  # rewards are in [0, 1]; clamp so Beta stays defined
        return alpha0 + weight * s, beta0 + weight * (n - s)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeedbackState":
        return cls(arms=list(d["arms"]), iteration=int(d["iteration"]), pulls=dict(d["pulls"]),
                   reward_sum={k: float(v) for k, v in d["reward_sum"].items()},
                   last_reward={k: float(v) for k, v in d.get("last_reward", {}).items()},
                   collected=int(d.get("collected", 0)))


@dataclass
class Choice:
    arm: str
    reason: str  # warmup | explore | exploit | ucb | thompson
    epsilon: float | None
    samples: dict[str, float] | None = None  # thompson: the posterior draw per arm


class Router:
    def __init__(self, cfg: RouterConfig, seed: int = 0):
        self.cfg, self.seed = cfg, seed

    def rng(self, iteration: int) -> random.Random:
        return random.Random(f"router:{self.seed}:{iteration}")

    def epsilon(self, iteration: int) -> float:
        return max(self.cfg.min_epsilon, self.cfg.epsilon * self.cfg.epsilon_decay ** iteration)

    def choose(self, state: FeedbackState) -> Choice:
        rng = self.rng(state.iteration)
        eps = self.epsilon(state.iteration) if self.cfg.strategy == "epsilon_greedy" else None
        need = [a for a in state.arms if state.pulls[a] < self.cfg.warmup_pulls]
        if need:
            order = list(state.arms)
            random.Random(f"warmup:{self.seed}").shuffle(order)  # a fixed order for the whole warmup
            return Choice(next(a for a in order if a in need), "warmup", eps)
        if self.cfg.strategy == "ucb1":
            total = sum(state.pulls.values())

            def ucb(a: str) -> float:
                n = state.pulls[a]
                if n == 0:
                    return math.inf
                return state.reward_sum[a] / n + self.cfg.ucb_c * math.sqrt(2 * math.log(max(total, 1)) / n)

            return Choice(_argmax(state.arms, ucb, rng), "ucb", None)
        if self.cfg.strategy == "thompson":
            c = self.cfg
            draws = {}
            for a in state.arms:  # in arm order, from the iteration's generator: a resumed run draws the same
                alpha, beta = state.beta_posterior(a, c.thompson_alpha0, c.thompson_beta0, c.thompson_weight)
                draws[a] = round(rng.betavariate(alpha, beta), 6)
            return Choice(_argmax(state.arms, draws.__getitem__, rng), "thompson", None, draws)
        if rng.random() < eps:
            return Choice(rng.choice(state.arms), "explore", eps)
        return Choice(_argmax(state.arms, lambda a: -math.inf if state.mean(a) is None else state.mean(a), rng),
                      "exploit", eps)


def _argmax(arms: list[str], score: Any, rng: random.Random) -> str:
    vals = {a: score(a) for a in arms}
    best = max(vals.values())
    return rng.choice([a for a in arms if vals[a] == best])
