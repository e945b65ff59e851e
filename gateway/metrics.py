"""Prometheus metrics, one registry per app (no module globals). Labels are partner ids,
event types, outcomes and rule names: bounded sets, never content."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

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
