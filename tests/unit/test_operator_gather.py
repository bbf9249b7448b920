"""The autoscaler's loop against real HTTP servers on loopback that answer
like worker pods (one address each, 127.0.0.2 and up, all on one port as
pods of one CoreCluster are): what it reads, and what it does with silence."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from prometheus_client import REGISTRY

from corescale.operator.api.spec import Policy
from corescale.operator.autoscaler.decision import Decision
from corescale.operator.autoscaler.gather import Gatherer, Key, Pod, Target
from corescale.operator.runtime.autoscaling import Parsed, targets

KEY: Key = ("shop", "orders")
POLICY = Policy(min_replicas=1, max_replicas=10, target_in_flight=4)


class FakePods:
    """Loopback servers answering /metrics like a one-worker pod."""

    def __init__(self, count: int) -> None:
        self.ips = [f"127.0.0.{i + 2}" for i in range(count)]
        self.in_flight = dict.fromkeys(self.ips, 0.0)
        self.silent: set[str] = set()
        self.runners: list[web.AppRunner] = []
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    async def start(self) -> None:
        for ip in self.ips:
            app = web.Application()
            app.router.add_get("/metrics", self._metrics)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, ip, self.port).start()
            self.runners.append(runner)

    async def _metrics(self, request: web.Request) -> web.Response:
        ip = request.transport.get_extra_info("sockname")[0]  # type: ignore[union-attr]
        if ip in self.silent:
            await asyncio.sleep(0.6)
        return web.Response(
            text=f'corescale_requests_in_flight{{worker="0"}} {self.in_flight[ip]}\n'
            'corescale_request_duration_seconds_sum{worker="0"} 0\n'
            "corescale_workers 1\n"
        )

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()

    def target(self, current: int) -> Target:
        pods = tuple(Pod(f"pod-{i}", ip, 1) for i, ip in enumerate(self.ips))
        return Target(POLICY, self.port, current, pods)


def _with_pods(scenario: Callable[[FakePods], Awaitable[None]]) -> None:
    async def main() -> None:
        fake = FakePods(3)
        await fake.start()
        try:
            await scenario(fake)
        finally:
            await fake.stop()

    asyncio.run(main())


async def _decide(gatherer: Gatherer) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as session:
        await gatherer.round(session)


def _gatherer(fake: FakePods, current: int, decisions: list[Decision]) -> Gatherer:
    async def act(key: Key, decision: Decision, target: Target) -> None:
        assert key == KEY
        decisions.append(decision)

    return Gatherer(lambda: {KEY: fake.target(current)}, act, timeout=0.3)


def test_a_round_reads_every_ready_pod_and_decides() -> None:
    async def scenario(pods: FakePods) -> None:
        pods.in_flight = dict.fromkeys(pods.ips, 8.0)
        decisions: list[Decision] = []
        gatherer = _gatherer(pods, 3, decisions)
        await _decide(gatherer)
        assert decisions[-1].replicas == 6
        assert decisions[-1].reason == "in flight 24.0 per 3 workers, target 4"
        assert gatherer.stats.scrapes == 3
        assert gatherer.stats.errors == 0

    _with_pods(scenario)


def test_a_silent_pod_counts_as_loaded_as_the_others() -> None:
    async def scenario(pods: FakePods) -> None:
        pods.in_flight = dict.fromkeys(pods.ips, 8.0)
        pods.silent = {pods.ips[0]}
        decisions: list[Decision] = []
        gatherer = _gatherer(pods, 3, decisions)
        await _decide(gatherer)
        assert decisions[-1].load == 24.0
        assert gatherer.stats.errors == 1

    _with_pods(scenario)


def test_all_pods_silent_holds_the_count() -> None:
    async def scenario(pods: FakePods) -> None:
        pods.silent = set(pods.ips)
        decisions: list[Decision] = []
        gatherer = _gatherer(pods, 3, decisions)
        await _decide(gatherer)
        assert decisions[-1].replicas == 3
        assert decisions[-1].load is None

    _with_pods(scenario)


def test_targets_list_ready_pods_of_autoscaled_coreclusters_only() -> None:
    class Remembers:
        def autoscaled_replicas(self, key: Key, body: object, wanted: object) -> int:
            return 3

    def cc(name: str, spec: dict[str, object]) -> dict[str, object]:
        return {"metadata": {"name": name, "resourceVersion": "7"}, "spec": spec}

    def pod(name: str, ready: str, ip: str | None, mode: str = "pods") -> dict[str, object]:
        return {
            "metadata": {"name": name, "mode": mode, "deletionTimestamp": None},
            "status": {"conditions": [{"type": "Ready", "status": ready}], "podIP": ip},
        }

    scaled = ("ns", "scaled")
    coreclusters = [
        (scaled, cc("scaled", {"autoscaling": {"maxReplicas": 4}, "port": 9000})),
        (("ns", "fixed"), cc("fixed", {"replicas": 2})),
        (("ns", "broken"), cc("broken", {"autoscaling": {"maxReplicas": 0}})),
    ]
    pods = {
        scaled: [
            pod("a", "True", "10.0.0.1"),
            pod("b", "False", "10.0.0.2"),
            pod("c", "True", None),
        ],
        ("ns", "fixed"): [pod("d", "True", "10.0.0.4")],
    }
    parsed: Parsed = {}
    found = targets(coreclusters, pods, Remembers(), "img", parsed)  # type: ignore[arg-type]
    assert list(found) == [scaled]
    assert found[scaled].port == 9000
    assert found[scaled].current == 3
    assert found[scaled].ready == (Pod("a", "10.0.0.1", 1),)
    assert set(parsed) == {scaled, ("ns", "broken")}


def test_targets_parse_a_spec_again_only_when_its_resource_version_changes() -> None:
    class Remembers:
        def autoscaled_replicas(self, key: Key, body: object, wanted: object) -> int:
            return 1

    def cc(version: str, port: int) -> dict[str, object]:
        spec = {"autoscaling": {"maxReplicas": 4}, "port": port}
        return {"metadata": {"name": "a", "resourceVersion": version}, "spec": spec}

    key = ("ns", "a")
    parsed: Parsed = {}
    assert targets([(key, cc("1", 9000))], {}, Remembers(), "img", parsed)[key].port == 9000  # type: ignore[arg-type]
    first = parsed[key][1]
    # Same version: the parsed spec is reused, even if the body handed in differs.
    assert targets([(key, cc("1", 9001))], {}, Remembers(), "img", parsed)[key].port == 9000  # type: ignore[arg-type]
    assert parsed[key][1] is first
    assert targets([(key, cc("2", 9001))], {}, Remembers(), "img", parsed)[key].port == 9001  # type: ignore[arg-type]
    # A CoreCluster gone from the store is forgotten.
    targets([], {}, Remembers(), "img", parsed)  # type: ignore[arg-type]
    assert parsed == {}


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_rounds_scrapes_errors_and_decisions_reach_the_operators_metrics() -> None:
    async def scenario(pods: FakePods) -> None:
        pods.in_flight = dict.fromkeys(pods.ips, 8.0)
        pods.silent = {pods.ips[0]}
        names = ("rounds", "scrapes", "scrape_errors")
        before = {n: _sample(f"corescale_operator_autoscaler_{n}_total") for n in names}
        up = {"namespace": KEY[0], "corecluster": KEY[1], "direction": "up"}
        ups = _sample("corescale_operator_autoscaler_decisions_total", **up)
        await _decide(_gatherer(pods, 3, []))
        after = {n: _sample(f"corescale_operator_autoscaler_{n}_total") for n in names}
        assert {n: after[n] - before[n] for n in names} == {
            "rounds": 1,
            "scrapes": 3,
            "scrape_errors": 1,
        }
        assert _sample("corescale_operator_autoscaler_decisions_total", **up) == ups + 1

    _with_pods(scenario)
