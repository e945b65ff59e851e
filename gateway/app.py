"""``create_app(deployment)``: build the aiohttp application and its services once.

Resources (the store, delivery workers and their HTTP sessions) open and close in a
``cleanup_ctx``; nothing is read from module globals or at import time. With
``delivery.process: separate`` the workers are not started here: a supervised
``gateway deliver`` process runs them (``delivery_workers``), spawned only after the store
is open and expired leases were released.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from adapters import AdapterRegistry, default_registry
from adapters.base import AdapterOptionsError
from canonical.validate import compile_schemas
from gateway import background
from gateway.api import health, ig, messages, ops
from gateway.api.auth import Authenticator
from gateway.api.problems import problem_middleware
from gateway.api.state import SERVICES, Services
from gateway.audit import AuditEvent
from gateway.config import Deployment
from gateway.consents import GatewayConsents
from gateway.console import setup_console
from gateway.crypto import Keyring, generate_keyring
from gateway.delivery.dispatcher import DeliveryWorkers, Dispatcher
from gateway.delivery.supervisor import RemoteDispatcher, deliver_command
from gateway.errors import ConfigError
from gateway.folder_drop import serve_folder_drops
from gateway.logging import request_id_middleware
from gateway.metrics import Metrics
from gateway.mllp import serve_mllp
from gateway.pipeline import Pipeline, PolicyHolder
from gateway.store.base import Backend
from gateway.store.sqlite import SqliteBackend

log = structlog.get_logger("gateway.app")


def open_keyring(deployment: Deployment) -> Keyring:
    s = deployment.settings
    if not s.keyring_path.exists() and s.create_keyring:
        generate_keyring(s.keyring_path)
        log.warning("keyring.created", note="a new keyring was generated; back it up")
    return Keyring.load(s.keyring_path)


def open_backend(deployment: Deployment) -> Backend:
    """The configured backend, not yet opened (``open`` runs in the app's lifecycle; on
    PostgreSQL it refuses a database whose schema is behind: run ``gateway db upgrade``)."""
    s = deployment.settings
    if s.store_backend == "rabbitmq-postgresql":
        from gateway.store.rabbitmq import RabbitQueueBackend

        if s.database_url is None or s.amqp_url is None:
            raise ConfigError("gateway.yaml: /store (rabbitmq-needs-urls): no database or AMQP URL")
        return RabbitQueueBackend(
            s.database_url.reveal(),
            s.amqp_url.reveal(),
            pool_size=s.database_pool_size,
            prefix=s.amqp_prefix,
            prefetch=s.amqp_prefetch,
        )
    if s.store_backend == "postgresql":
        from gateway.store.postgres import PostgresBackend

        if s.database_url is None:
            raise ConfigError("gateway.yaml: /store/url (postgresql-needs-url): no database URL")
        return PostgresBackend(s.database_url.reveal(), pool_size=s.database_pool_size)
    return SqliteBackend(s.db_path, synchronous=s.synchronous)


def wake_on_arrival(store: Backend, dispatcher: DeliveryWorkers) -> None:
    """On RabbitMQ, a message arriving for a partner wakes its worker (no poll wait)."""
    from gateway.store.rabbitmq import RabbitQueueBackend

    if isinstance(store, RabbitQueueBackend):
        store.broker.on_arrival = dispatcher.notify


def delivery_workers(
    deployment: Deployment, store: Backend, keyring: Keyring, metrics: Metrics
) -> DeliveryWorkers:
    """The workers on this event loop (``inline``) or in a delivery process (``separate``)."""
    s = deployment.settings
    if s.delivery_process != "separate":
        dispatcher = Dispatcher(deployment.partners, store, keyring, metrics)
        wake_on_arrival(store, dispatcher)
        return dispatcher
    # The child resolves the same files; a --data-dir override (flat paths) is passed on.
    flat = s.db_path.parent == s.data_dir and s.keyring_path.parent == s.data_dir
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    if level not in ("debug", "info", "warning", "error"):
        level = "warning"
    command = deliver_command(s.config_dir, level, ["--data-dir", str(s.data_dir)] if flat else [])
    webhooks = [pid for pid, p in deployment.partners.items() if p.delivery.mode == "webhook"]
    return RemoteDispatcher(webhooks, command, s.delivery_socket, metrics)


def partner_adapters(deployment: Deployment, adapters: AdapterRegistry) -> dict[str, AdapterRegistry]:
    """Each partner's registry (its adapter options applied); refuses unknown formats."""
    out: dict[str, AdapterRegistry] = {}
    mllp_senders: dict[str, str] = {}
    for pid, partner in deployment.partners.items():
        formats = {"delivery format": partner.delivery.format}
        if partner.inbound.folder_drop is not None:
            formats["folder_drop format"] = partner.inbound.folder_drop.format
        for what, name in formats.items():
            if name not in adapters.by_name:
                raise ConfigError(
                    f"partners.yaml: partner {pid} (unknown-format): {what} "
                    f"{name!r} is not one of {sorted(adapters.by_name)}"
                )
        if partner.inbound.mllp and partner.inbound.ods_code:
            other = mllp_senders.setdefault(partner.inbound.ods_code, pid)
            if other != pid:
                raise ConfigError(
                    f"partners.yaml: partners {other} and {pid} (unique-mllp-sender): both accept MLLP "
                    "with the same ods_code; MSH-4 could not tell them apart"
                )
        try:
            out[pid] = adapters.configured(partner.inbound.adapter_options)
        except AdapterOptionsError as exc:
            raise ConfigError(
                f"partners.yaml: partner {pid} inbound.adapter_options (adapter-options): {exc}"
            ) from None
    return out


def create_app(deployment: Deployment, *, backend: Backend | None = None) -> web.Application:
    adapters = default_registry()
    per_partner = partner_adapters(deployment, adapters)
    # Build every validator now: a lazy first load would read files on the event loop.
    compile_schemas()
    keyring = open_keyring(deployment)
    store = backend or open_backend(deployment)
    metrics = Metrics(delivery_process=deployment.settings.delivery_process == "separate")
    policy = PolicyHolder(deployment.policy)
    dispatcher = delivery_workers(deployment, store, keyring, metrics)
    auth = Authenticator(
        {h: pid for pid, p in deployment.partners.items() for h in p.token_hashes},
        {o.token_hash: (o.id, o.role) for o in deployment.settings.operators},
    )
    consents = GatewayConsents(keyring)
    pipeline = Pipeline(
        store=store,
        keyring=keyring,
        adapters=adapters,
        partner_adapters=per_partner,
        known_la_codes=deployment.settings.known_la_codes,
        policy=policy,
        partners=deployment.partners,
        metrics=metrics,
        notify=dispatcher.notify,
        consents=consents,
    )
    services = Services(
        deployment, store, keyring, adapters, policy, metrics, auth, pipeline, dispatcher, consents
    )

    app = web.Application(
        middlewares=[request_id_middleware, problem_middleware],
        client_max_size=deployment.settings.max_body_bytes,
    )
    app[SERVICES] = services
    app.router.add_post("/v1/messages", messages.post_message)
    app.router.add_get("/v1/messages/{message_id}", messages.get_message)
    app.router.add_get("/v1/inbox", messages.get_inbox)
    app.router.add_post("/v1/inbox/{delivery_id}/ack", messages.ack_inbox)
    app.router.add_get("/v1/ops/queues", ops.get_queues)
    app.router.add_get("/v1/ops/dead-letters", ops.get_dead_letters)
    app.router.add_post("/v1/ops/dead-letters/{delivery_id}/replay", ops.replay_dead_letter)
    app.router.add_post("/v1/ops/dead-letters/{delivery_id}/discard", ops.discard_dead_letter)
    app.router.add_post(
        "/v1/ops/dead-letters/{delivery_id}/replay-original", ops.replay_dead_letter_from_original
    )
    app.router.add_post("/v1/consents", ig.post_consent)
    app.router.add_get("/v1/consents", ig.get_consents)
    app.router.add_post("/v1/consents/{record_id}/withdraw", ig.withdraw_consent)
    app.router.add_get("/v1/reviews", ig.get_reviews)
    app.router.add_post("/v1/reviews/{delivery_id}/approve", ig.approve_review)
    app.router.add_post("/v1/reviews/{delivery_id}/reject", ig.reject_review)
    app.router.add_post("/v1/admin/policy/reload", ig.reload_policy)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics)
    app.router.add_get("/openapi.json", health.openapi)
    app.cleanup_ctx.append(_lifecycle)
    setup_console(app, deployment.settings.console)  # after _lifecycle: its sampler needs the open store
    app.cleanup_ctx.append(serve_folder_drops)
    app.cleanup_ctx.append(serve_mllp)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    svc = app[SERVICES]
    await svc.backend.open()
    released = await svc.backend.release_expired_leases()
    await svc.backend.append_audit(
        [
            AuditEvent(
                "gateway.started",
                {
                    "policy_version": svc.policy.current.version,
                    "key_id": svc.keyring.active,
                    "leases_released": released,
                },
            )
        ]
    )
    # The head first: a record made while the rest are read comes again on sync (skipped).
    head = await svc.backend.audit_head_seq()
    svc.consents.load(await svc.backend.all_consents(), head)
    svc.dispatcher.start()
    s = svc.deployment.settings
    tasks = [
        asyncio.create_task(
            background.every(s.review_check_seconds, background.escalation_job(svc), "escalate-reviews")
        ),
        asyncio.create_task(
            background.every(s.consent_sync_seconds, background.consent_sync_job(svc), "consent-sync")
        ),
    ]
    if s.policy_watch_seconds > 0:
        tasks.append(
            asyncio.create_task(
                background.every(
                    s.policy_watch_seconds, await background.policy_watch_job(svc), "policy-watch"
                )
            )
        )
    log.info(
        "gateway.started",
        policy_version=svc.policy.current.version,
        leases_released=released,
        partners=len(svc.deployment.partners),
    )
    try:
        yield
    finally:
        await background.stop(tasks)
        await svc.dispatcher.stop()
        await svc.backend.close()
        log.info("gateway.stopped")
