"""The ``gateway`` command.

    gateway serve --config DIR [--host H] [--port P]
    gateway deliver --config DIR         the delivery workers alone (spawned by serve when
                                         delivery.process is separate)
    gateway audit verify --config DIR [--expect-head HASH] [--json]
    gateway dead-letters list|replay|replay-original|discard --config DIR ...
    gateway keys generate|rotate|add|activate|rewrap ...
    gateway db upgrade --config DIR      apply PostgreSQL schema migrations
    gateway policy check|explain|test|diff ...   the IG lead's tools (see docs/policy-tools.md)
    gateway demo --config DIR            the example deployment plus a demo receiver

Every command has ``--help``. Exit codes: 0 success, 1 a check failed (e.g. the audit chain
is broken), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.audit import AuditRecord, verify_chain
from gateway.config import Deployment, load_deployment, load_settings
from gateway.crypto import Keyring, activate_key, add_key, generate_keyring, rotate_keyring
from gateway.errors import ConfigError
from gateway.logging import configure_logging
from gateway.policy_cli import add_policy_parser, run_policy
from gateway.store.base import Backend
from gateway.store.sqlite import SqliteBackend


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        required=True,
        metavar="DIR",
        help="deployment directory (gateway.yaml, partners.yaml, agreements.yaml, routes.yaml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description=("Information-sharing gateway for multi-agency children's services.")
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway (HTTP API and delivery workers)")
    _config_arg(serve)
    serve.add_argument("--host", help="listen address (overrides gateway.yaml)")
    serve.add_argument("--port", type=int, help="listen port (overrides gateway.yaml)")
    serve.add_argument("--data-dir", type=Path, help="database and keyring folder (overrides gateway.yaml)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    deliver = sub.add_parser(
        "deliver",
        help="run only the delivery workers (serve spawns this when delivery.process is separate)",
        description=(
            "Run the webhook delivery workers of a deployment, without the HTTP API. "
            "`gateway serve` spawns and supervises this command when gateway.yaml sets "
            "delivery.process: separate; running it by hand is for diagnosis only. It reads "
            "partner ids to wake, one per line, from standard input and exits when standard "
            "input reaches end of file (its parent died) or on SIGTERM. Status: GET /metrics "
            "and GET /circuits on the unix socket <data_dir>/delivery.sock (mode 0600)."
        ),
    )
    _config_arg(deliver)
    deliver.add_argument("--data-dir", type=Path, help="database and keyring folder (overrides gateway.yaml)")
    deliver.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    demo = sub.add_parser("demo", help="run the gateway and a demo receiver for the example partners")
    _config_arg(demo)
    demo.add_argument("--receiver-port", type=int, default=8099)

    receiver = sub.add_parser("demo-receiver", help="run only the demo receiver (prints deliveries)")
    receiver.add_argument("--port", type=int, default=8099)
    receiver.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="PARTNER=whsec_...",
        help="verify signatures for a partner path (repeatable)",
    )

    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_sub.add_parser("verify", help="verify the hash chain; exit 1 on any break")
    _config_arg(verify)
    verify.add_argument(
        "--expect-head",
        metavar="HASH",
        help="a head hash recorded earlier: fail if it is no longer in the chain",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")

    dl = sub.add_parser("dead-letters", help="list, replay, replay from the original or discard dead letters")
    dl_sub = dl.add_subparsers(dest="dl_command", required=True, metavar="ACTION")
    dl_list = dl_sub.add_parser("list", help="list dead letters (metadata only)")
    _config_arg(dl_list)
    dl_list.add_argument("--partner")
    for name, text in (
        ("replay", "queue a dead letter again (same ids, the stored payload)"),
        (
            "replay-original",
            "rebuild a dead letter from the original message under the current policy and consent, "
            "and queue it again (same ids) if the new decision permits",
        ),
        ("discard", "drop a dead letter for good"),
    ):
        p = dl_sub.add_parser(name, help=text)
        _config_arg(p)
        p.add_argument("delivery_id")
        p.add_argument("--reason", required=True, help="why (written to the audit log)")
        p.add_argument("--actor", default="cli", help="who is acting (an operator id)")

    _keys_parser(sub)
    db = sub.add_parser("db", help="database schema (PostgreSQL store)")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_sub.add_parser(
        "upgrade", help="apply pending PostgreSQL schema migrations, in order (idempotent)"
    )
    _config_arg(upgrade)
    console = sub.add_parser("console", help="web console tools")
    console_sub = console.add_subparsers(dest="console_command", required=True, metavar="ACTION")
    console_sub.add_parser(
        "hash-password",
        help="read a password from standard input, print its argon2id hash for gateway.yaml console.users",
    )
    add_policy_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(
        getattr(args, "log_level", "warning") if args.command in ("serve", "deliver") else "warning"
    )
    try:
        handler: Callable[[argparse.Namespace], int] = {
            "serve": _serve,
            "deliver": _deliver,
            "demo": _demo,
            "demo-receiver": _demo_receiver,
            "audit": _audit,
            "dead-letters": _dead_letters,
            "keys": _keys,
            "db": _db,
            "policy": run_policy,
            "console": _console,
        }[args.command]
        return handler(args)
    except ConfigError as exc:
        print(f"configuration error:\n{exc.detail}", file=sys.stderr)
        return 2


def _console(args: argparse.Namespace) -> int:
    """``console hash-password``: the password comes from stdin (one line; never an argument,
    which would reach the shell history and the process list) and is never printed."""
    from gateway.console.passwords import hash_password

    password = sys.stdin.readline().rstrip("\r\n")
    try:
        print(hash_password(password))
    except ValueError as exc:
        print(f"console hash-password: {exc}", file=sys.stderr)
        return 2
    return 0


def _serve(args: argparse.Namespace) -> int:
    from gateway.server import serve

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    deployment = load_deployment(args.config, overrides=overrides)
    if args.data_dir:
        from gateway.config import with_data_dir

        deployment = with_data_dir(deployment, args.data_dir)
    serve(deployment)
    return 0


def _deliver(args: argparse.Namespace) -> int:
    from gateway.delivery.process import deliver

    deployment = load_deployment(args.config)
    if args.data_dir:
        from gateway.config import with_data_dir

        deployment = with_data_dir(deployment, args.data_dir)
    return deliver(deployment)


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return run_demo(args.config, args.receiver_port)


def _demo_receiver(args: argparse.Namespace) -> int:
    from gateway.demo import run_receiver

    secrets = dict(s.split("=", 1) for s in args.secret)
    asyncio.run(run_receiver(args.port, secrets))
    return 0


def _with_backend(config: Path, fn: Callable[[Backend], Awaitable[int]]) -> int:
    settings = load_settings(config.resolve())
    backend: Backend
    if settings.store_backend in ("postgresql", "rabbitmq-postgresql") and settings.database_url is not None:
        from gateway.store.postgres import PostgresBackend

        # Also for rabbitmq-postgresql: a replay returns the delivery to the outbox, and the
        # running gateways' relays republish it (no broker connection needed here).
        backend = PostgresBackend(settings.database_url.reveal(), pool_size=2)
    else:
        if not settings.db_path.exists():
            raise ConfigError(f"{settings.db_path}: no database yet (has the gateway run?)")
        backend = SqliteBackend(settings.db_path, synchronous=settings.synchronous)

    async def run() -> int:
        await backend.open()
        try:
            return await fn(backend)
        finally:
            await backend.close()

    return asyncio.run(run())


def _audit(args: argparse.Namespace) -> int:
    async def verify(backend: Backend) -> int:
        records: list[AuditRecord] = [r async for r in backend.audit_records()]
        result = verify_chain(records, args.expect_head)
        if args.json:
            print(
                json.dumps(
                    {
                        "ok": result.ok,
                        "records": result.records,
                        "head": result.head,
                        "problems": list(result.problems),
                    }
                )
            )
        else:
            for problem in result.problems:
                print(f"BROKEN  {problem}")
            print(f"{'OK' if result.ok else 'FAILED'}: {result.records} records; head {result.head}")
            if result.ok:
                print("Record the head hash off this machine; check it later with --expect-head.")
        return 0 if result.ok else 1

    return _with_backend(args.config, verify)


def _dead_letters(args: argparse.Namespace) -> int:
    # Files are read before the event loop starts: policy, partners and keyring.
    prepared = _replay_inputs(args.config) if args.dl_command == "replay-original" else None

    async def run(backend: Backend) -> int:
        if args.dl_command == "list":
            rows = await backend.dead_letters(args.partner, 10_000)
            for d in rows:
                print(
                    f"{d.delivery_id}  message={d.message_id}  partner={d.recipient}  "
                    f"attempts={d.attempts}  last_error={d.last_error}"
                )
            print(f"{len(rows)} dead letter(s)")
            return 0
        if prepared is not None:
            return await _replay_original(args, backend, *prepared)
        action = backend.replay if args.dl_command == "replay" else backend.discard
        if not await action(args.delivery_id, args.reason, f"cli:{args.actor}"):
            print(f"no dead letter {args.delivery_id}", file=sys.stderr)
            return 1
        print(f"{args.delivery_id}: {'queued again' if args.dl_command == 'replay' else 'discarded'}")
        return 0

    return _with_backend(args.config, run)


def _replay_inputs(config: Path) -> tuple[Deployment, Keyring]:
    from gateway.app import open_keyring

    deployment = load_deployment(config)
    return deployment, open_keyring(deployment)


async def _replay_original(
    args: argparse.Namespace, backend: Backend, deployment: Deployment, keyring: Keyring
) -> int:
    """Decide again, re-render and requeue one dead letter (``Pipeline.replay_from_original``)
    with this configuration's policy, partners and keyring and the stored consents. Prints ids
    and the decision outcome only; exit 1 when nothing was queued."""
    from adapters import default_registry
    from gateway.consents import GatewayConsents
    from gateway.metrics import Metrics
    from gateway.pipeline import Pipeline, PolicyHolder

    consents = GatewayConsents(keyring)
    consents.load(await backend.all_consents())
    pipeline = Pipeline(
        store=backend,
        keyring=keyring,
        adapters=default_registry(),
        policy=PolicyHolder(deployment.policy),
        partners=deployment.partners,
        metrics=Metrics(),
        notify=lambda _recipient: None,  # the running gateway's workers find ready deliveries
        consents=consents,
    )
    outcome = await pipeline.replay_from_original(args.delivery_id, args.reason, f"cli:{args.actor}")
    if outcome is None:
        print(f"no dead letter {args.delivery_id}", file=sys.stderr)
        return 1
    if outcome.queued:
        print(
            f"{args.delivery_id}: rebuilt from the original ({outcome.effect}, {outcome.rule}), queued again"
        )
        return 0
    why = outcome.error or f"the current decision is {outcome.effect} ({outcome.rule})"
    print(f"{args.delivery_id}: not queued: {why}; it stays a dead letter", file=sys.stderr)
    return 1


def _keys_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``gateway keys ...``: generate, rotate (one process), add + activate (a rotation in
    two steps across processes or instances), rewrap."""
    keys = sub.add_parser("keys", help="encryption keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    gen = keys_sub.add_parser("generate", help="create a new keyring file (mode 0600)")
    gen.add_argument("--keyring", type=Path, required=True)
    rot = keys_sub.add_parser(
        "rotate", help="add a key and make it active at once (one gateway process); old keys stay to decrypt"
    )
    _config_arg(rot)
    add = keys_sub.add_parser(
        "add",
        help="add a key without making it active (step 1 of a rotation across processes or instances)",
    )
    _config_arg(add)
    act = keys_sub.add_parser(
        "activate", help="make a key already in the keyring the sealing key (step 2, after every restart)"
    )
    act.add_argument("key_id", help="the id 'gateway keys add' printed")
    _config_arg(act)
    rew = keys_sub.add_parser("rewrap", help="re-encrypt stored payloads under the active key")
    _config_arg(rew)


def _keys(args: argparse.Namespace) -> int:
    if args.keys_command == "generate":
        print(f"created {args.keyring} with active key {generate_keyring(args.keyring)}")
        return 0
    settings = load_settings(args.config.resolve())
    if args.keys_command == "rotate":
        kid = rotate_keyring(settings.keyring_path)
        print(f"active key is now {kid}; restart the gateway, then run 'gateway keys rewrap'")
        return 0
    if args.keys_command == "add":
        kid = add_key(settings.keyring_path, activate=False)
        print(
            f"added key {kid} (not active); give every instance this keyring and restart them all, "
            f"then run 'gateway keys activate {kid}'"
        )
        return 0
    if args.keys_command == "activate":
        activate_key(settings.keyring_path, args.key_id)
        print(
            f"active key is now {args.key_id}; restart every instance with this keyring, "
            "then run 'gateway keys rewrap'"
        )
        return 0
    keyring = Keyring.load(settings.keyring_path)

    async def rewrap(backend: Backend) -> int:
        n = await backend.rewrap(keyring)
        print(f"re-encrypted {n} payload(s) under {keyring.active}")
        return 0

    return _with_backend(args.config, rewrap)


def _db(args: argparse.Namespace) -> int:
    settings = load_settings(args.config.resolve())
    if settings.store_backend not in ("postgresql", "rabbitmq-postgresql") or settings.database_url is None:
        print("the store is SQLite: it creates its own schema at start-up; nothing to upgrade")
        return 0
    from gateway.store.postgres_schema import LATEST, upgrade_database

    applied = asyncio.run(upgrade_database(settings.database_url.reveal()))
    if applied:
        print(f"applied migration(s) {', '.join(map(str, applied))}; schema at version {LATEST}")
    else:
        print(f"schema already at version {LATEST}; nothing to do")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
