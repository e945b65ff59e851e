"""Prometheus metrics, one registry per app (no module globals). Labels are partner ids,
event types, outcomes and rule names: bounded sets, never content.

With ``delivery.process: separate`` the delivery workers run in a child process with its own
registry; the parent's ``/metrics`` merges the child's ``DELIVERY_FAMILIES`` into its own
exposition (``merged_exposition``) so that a scrape sees each family once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


DELIVERY_FAMILIES = frozenset(
    {
        "gateway_deliveries",
        "gateway_delivery_attempt_seconds",
        "gateway_end_to_end_seconds",
        "gateway_circuit_open",
    }
)
"""The families a delivery worker writes: what the delivery process exports to its parent."""


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    delivery_process: bool = False
    """True in a parent whose workers run in a delivery process: adds ``delivery_process_up``."""

    def __post_init__(self) -> None:
        r = self.registry
        self.received = Counter(
            "gateway_messages_received", "Messages accepted (202)", ["source", "event_type"], registry=r
        )
        self.rejected = Counter(
            "gateway_messages_rejected",
            "Inbound messages rejected, by rule",
            ["source", "status", "rule"],
            registry=r,
        )
        self.duplicates = Counter(
            "gateway_idempotent_replays", "Requests answered from an idempotency key", ["source"], registry=r
        )
        self.decisions = Counter("gateway_decisions", "Sharing decisions", ["effect", "rule"], registry=r)
        self.deliveries = Counter(
            "gateway_deliveries", "Delivery attempts by result", ["recipient", "result"], registry=r
        )
        self.queue_ready = Gauge("gateway_queue_ready", "Deliveries waiting", ["recipient"], registry=r)
        self.queue_leased = Gauge("gateway_queue_in_flight", "Deliveries leased", ["recipient"], registry=r)
        self.queue_dead = Gauge("gateway_queue_dead_letters", "Dead letters", ["recipient"], registry=r)
        self.queue_oldest = Gauge(
            "gateway_queue_oldest_age_seconds", "Age of the oldest undelivered", ["recipient"], registry=r
        )
        self.circuit_open = Gauge(
            "gateway_circuit_open", "1 while a partner's circuit is open", ["recipient"], registry=r
        )
        self.reviews_escalated = Counter(
            "gateway_reviews_escalated",
            "Held decisions past their deadline",
            ["recipient", "review_role"],
            registry=r,
        )
        self.ingest_seconds = Histogram(
            "gateway_ingest_seconds", "POST to durable 202", buckets=LATENCY_BUCKETS, registry=r
        )
        self.delivery_seconds = Histogram(
            "gateway_delivery_attempt_seconds",
            "One webhook attempt",
            ["recipient"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decision_seconds = Histogram(
            "gateway_decision_seconds",
            "Deciding, redacting and rendering one message for all its candidates",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_up = Gauge(
            "gateway_store_up", "1 when the store answered the last scrape's queue query", registry=r
        )
        self.end_to_end_seconds = Histogram(
            "gateway_end_to_end_seconds", "Received to delivered", buckets=LATENCY_BUCKETS, registry=r
        )
        self.delivery_process_up: Gauge | None = None
        if self.delivery_process:
            self.delivery_process_up = Gauge(
                "gateway_delivery_process_up",
                "1 while the delivery process runs and answered its last status poll",
                registry=r,
            )


def exposition(registry: CollectorRegistry, only: frozenset[str] | None = None) -> bytes:
    """The registry in the Prometheus text format; with ``only``, just those families."""
    if only is None:
        return generate_latest(registry)
    return generate_latest(_Fixed(m for m in registry.collect() if m.name in only).registry())


def merged_exposition(registry: CollectorRegistry, remote: str) -> bytes:
    """This registry's families and the families of ``remote`` (another process's exposition
    text), each family exactly once: a family present in both gets the samples of both, and a
    sample present in both (same name and labels) is summed (``_created``: the earlier time).
    A family whose type differs between the two keeps the local one. Both sides are compared
    in their parsed form, so a counter's ``_created`` gauge family matches its twin. MUST NOT
    be given text from anywhere but our own delivery process: it is served as our metrics."""
    local = generate_latest(registry).decode()
    merged: dict[str, Metric] = {m.name: m for m in text_string_to_metric_families(local)}
    for theirs in text_string_to_metric_families(remote):
        ours = merged.get(theirs.name)
        if ours is None:
            merged[theirs.name] = theirs
        elif ours.type == theirs.type:
            merged[theirs.name] = _combine(ours, theirs)
    return generate_latest(_Fixed(merged.values()).registry())


def _combine(ours: Metric, theirs: Metric) -> Metric:
    out = Metric(ours.name, ours.documentation, ours.type, ours.unit)
    by_key: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
    for sample in [*ours.samples, *theirs.samples]:
        key = (sample.name, tuple(sorted(sample.labels.items())))
        seen = by_key.get(key)
        if seen is None:
            by_key[key] = sample
        elif sample.name.endswith("_created"):
            by_key[key] = seen._replace(value=min(seen.value, sample.value))
        else:
            by_key[key] = seen._replace(value=seen.value + sample.value)
    out.samples = list(by_key.values())
    return out


class _Fixed(Collector):
    """A collector that yields a fixed list of families (for rendering them)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)

    def registry(self) -> CollectorRegistry:
        r = CollectorRegistry(auto_describe=False)
        r.register(self)
        return r
