"""Client-side throttles for remote model endpoints: token buckets and a circuit breaker.

Hosted APIs meter requests and tokens per minute and answer excess with 429. Waiting on
our side before sending is cheaper than being refused, so every request first takes from
a requests-per-minute bucket and a tokens-per-minute bucket. When the endpoint keeps
failing anyway (sustained 429s, a dead server), the circuit breaker stops further calls
for a cool-down so that workers fail fast with an error that says why, instead of each
one burning its full retry budget and a run ending with nothing written and no message.

Both classes are thread-safe and take an injectable clock so tests need not sleep.
"""
from __future__ import annotations

import threading
import time
from typing import Callable


class TokenBucket:
    """A token bucket refilled at `per_minute / 60` tokens a second.

    `capacity` bounds the burst (default: `burst_s` seconds of allowance, at least 1).
    A request larger than the capacity waits for a full bucket and then drives the level
    negative; later requests wait off that debt, so the long-run rate stays exact and a
    single large request can never deadlock.
    """

    def __init__(self, per_minute: float, *, capacity: float | None = None, burst_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if per_minute <= 0:
            raise ValueError("per_minute must be > 0")
        self.rate = per_minute / 60.0
        self.capacity = float(capacity) if capacity is not None else max(1.0, self.rate * burst_s)
        self._clock = clock
        self._sleep = sleep
        self._level = self.capacity
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_acquire(self, n: float = 1.0) -> float:
        """Take n tokens if available and return 0.0, else return the seconds to wait."""
        with self._lock:
            self._refill()
            need = min(n, self.capacity)
            if self._level >= need:
                self._level -= n
                return 0.0
            return (need - self._level) / self.rate

    def acquire(self, n: float = 1.0) -> float:
        """Block until n tokens are taken; return the seconds spent waiting."""
        waited = 0.0
        while True:
            wait = self.try_acquire(n)
            if wait <= 0:
                return waited
            wait = min(wait, 5.0)  # re-check periodically; refunds may shorten the wait
            self._sleep(wait)
            waited += wait

    def credit(self, n: float) -> None:
        """Give back (n > 0) or charge extra (n < 0) once the true size of a request is known."""
        with self._lock:
            self._refill()
            self._level = min(self.capacity, self._level + n)

    @property
    def level(self) -> float:
        with self._lock:
            self._refill()
            return self._level


class CircuitOpen(Exception):
    """Raised by CircuitBreaker.before_call while calls are being refused."""

    def __init__(self, retry_in_s: float, failures: int):
        super().__init__(f"circuit open after {failures} consecutive failures; next probe in {retry_in_s:.1f}s")
        self.retry_in_s = retry_in_s
        self.failures = failures


class CircuitBreaker:
    """closed -> (N consecutive failures) -> open -> (cool-down) -> half-open -> closed/open.

    In half-open state exactly one probe call is let through; its success closes the
    circuit, its failure re-opens it for another cool-down. Other callers fail fast
    while the probe is in flight.
    """

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(self, failure_threshold: int = 8, cooldown_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._state = self.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._lock = threading.Lock()
        self.times_opened = 0

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == self.OPEN and self._clock() - self._opened_at >= self.cooldown_s:
                return self.HALF_OPEN
            return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def before_call(self) -> None:
        """Return if a call may proceed, raise CircuitOpen if it must fail fast."""
        with self._lock:
            if self._state == self.CLOSED:
                return
            now = self._clock()
            if self._state == self.OPEN:
                remaining = self.cooldown_s - (now - self._opened_at)
                if remaining > 0:
                    raise CircuitOpen(remaining, self._failures)
                self._state = self.HALF_OPEN
                self._probe_in_flight = False
            # half-open: one probe at a time
            if self._probe_in_flight:
                raise CircuitOpen(0.0, self._failures)
            self._probe_in_flight = True

    def record_success(self) -> None:
        with self._lock:
            self._state = self.CLOSED
            self._failures = 0
            self._probe_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == self.HALF_OPEN or self._failures >= self.failure_threshold:
                if self._state != self.OPEN:
                    self.times_opened += 1
                self._state = self.OPEN
                self._opened_at = self._clock()
                self._probe_in_flight = False

    def release_probe(self) -> None:
        """A half-open probe ended with neither success nor an endpoint failure (e.g. a 400)."""
        with self._lock:
            self._probe_in_flight = False
