"""The autoscaler's loop: scrape every autoscaled CoreCluster's ready worker
pods about once a second, keep each CoreCluster's load window, and hand each
round's decision to the operator.

It runs beside kopf's handlers as one asyncio task and never blocks them:
every scrape has a timeout, at most ``concurrency`` run at once over all
CoreClusters, and a round that overruns its second delays the next one
instead of piling up. One scrape per pod serves all of its workers (a
prefork pod's ``/metrics`` covers every process of the pod).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp

from corescale.operator.api.spec import Policy
from corescale.operator.autoscaler import load
from corescale.operator.autoscaler.decision import Decision, Sample, decide
from corescale.operator.process import metrics

log = logging.getLogger(__name__)

Key = tuple[str, str]


@dataclass(frozen=True)
class Pod:
    name: str
    ip: str
    workers: int


@dataclass(frozen=True)
class Target:
    """What the loop needs of one autoscaled CoreCluster, as now known."""

    policy: Policy
    port: int
    current: int
    ready: tuple[Pod, ...]


@dataclass
class _Track:
    """One CoreCluster's memory between rounds."""

    since: float
    samples: deque[Sample] = field(default_factory=deque)
    readings: dict[str, load.Reading] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    last_down: float | None = None


@dataclass
class Stats:
    """Counts for the operator's own metrics and the benchmark."""

    rounds: int = 0
    scrapes: int = 0
    errors: int = 0
    round_seconds: float = 0.0


Decide = Callable[[Key, Decision, Target], Awaitable[None]]


class Gatherer:
    """Scrapes, remembers the windows, decides; ``act`` applies a decision."""

    def __init__(
        self,
        targets: Callable[[], Mapping[Key, Target]],
        act: Decide,
        *,
        interval: float = 1.0,
        timeout: float = 0.8,
        concurrency: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._targets = targets
        self._act = act
        self._interval = interval
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._limit = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._tracks: dict[Key, _Track] = {}
        self.stats = Stats()

    async def run(self) -> None:
        """Rounds until cancelled."""
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            while True:
                started = self._clock()
                try:
                    await self.round(session)
                except Exception:
                    log.exception("autoscaler round failed; the next one runs as usual")
                elapsed = self._clock() - started
                self.stats.round_seconds += elapsed
                await asyncio.sleep(max(0.0, self._interval - elapsed))

    async def round(self, session: aiohttp.ClientSession) -> None:
        """One scrape of every target, then one decision per target."""
        targets = dict(self._targets())
        for gone in self._tracks.keys() - targets.keys():
            del self._tracks[gone]
        now = self._clock()
        for key in targets.keys() - self._tracks.keys():
            self._tracks[key] = _Track(since=now)
        await asyncio.gather(*(self._one(session, key, t) for key, t in targets.items()))
        self.stats.rounds += 1
        metrics.SCRAPE_ROUNDS.inc()

    async def _one(self, session: aiohttp.ClientSession, key: Key, target: Target) -> None:
        track = self._tracks[key]
        readings = await asyncio.gather(
            *(self._scrape(session, key, pod, target) for pod in target.ready)
        )
        now = self._clock()
        loads: dict[str, tuple[float, int]] = {}
        fresh: dict[str, load.Reading] = {}
        for pod, reading in zip(target.ready, readings, strict=True):
            if reading is None:
                continue
            loads[pod.name] = (load.concurrency(track.readings.get(pod.name), reading), pod.workers)
            fresh[pod.name] = reading
        # Pods that did not answer keep their last reading for the next round;
        # pods no longer ready are forgotten.
        ready = {pod.name for pod in target.ready}
        track.readings = {name: r for name, r in (track.readings | fresh).items() if name in ready}
        sample = load.cluster_sample(now, loads, sum(p.workers for p in target.ready))
        if sample is not None:
            track.samples.append(sample)
        horizon = now - max(target.policy.down_window, target.policy.up_window) - 1
        while track.samples and track.samples[0].time < horizon:
            track.samples.popleft()
        decision = decide(
            target.policy,
            track.samples,
            target.current,
            now,
            observed_since=track.since,
            last_down=track.last_down,
        )
        if decision.replicas < target.current:
            track.last_down = now
        metrics.decided(key, target.current, decision.replicas)
        await self._act(key, decision, target)

    async def _scrape(
        self, session: aiohttp.ClientSession, key: Key, pod: Pod, target: Target
    ) -> load.Reading | None:
        track = self._tracks[key]
        async with self._limit:
            self.stats.scrapes += 1
            metrics.SCRAPES.inc()
            try:
                async with session.get(f"http://{pod.ip}:{target.port}/metrics") as response:
                    response.raise_for_status()
                    text = await response.text()
                reading = load.parse(text, self._clock())
            except (aiohttp.ClientError, TimeoutError, load.MetricsError) as exc:
                self.stats.errors += 1
                metrics.SCRAPE_ERRORS.inc()
                if pod.name not in track.failing:
                    log.warning("%s/%s: cannot read pod %s's metrics: %s", *key, pod.name, exc)
                    track.failing.add(pod.name)
                return None
        if pod.name in track.failing:
            log.info("%s/%s: pod %s's metrics answer again", *key, pod.name)
            track.failing.discard(pod.name)
        return reading
