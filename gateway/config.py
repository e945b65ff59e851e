"""Load a deployment from a directory: ``gateway.yaml`` (settings), ``partners.yaml``,
``agreements.yaml``, ``routes.yaml`` (policy) and ``secrets.yaml`` (webhook secrets).

Configure once, freeze, then serve: every file is validated against its JSON Schema in
``schemas/`` here, at start-up; a bad file stops start-up with ``ConfigError`` naming the
file, the path inside it and the rule.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from canonical import Violation, default_dictionary
from canonical.validate import schema_validator, schema_violations
from consent import PolicyError, PolicySnapshot, compile_policy
from consent.policy import POLICY_FILES
from gateway.errors import ConfigError

MAX_CONFIG_BYTES = 32 * 1024 * 1024


class Secret:
    """A string whose repr never shows the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    lease_seconds: float = 30.0
    poll_interval_seconds: float = 1.0
    batch_size: int = 64
    timeout_seconds: float = 10.0
    max_attempts: int = 8
    base_delay_seconds: float = 2.0
    max_delay_seconds: float = 600.0
    concurrency: int = 16
    circuit_failure_threshold: int = 5
    circuit_reset_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class PartnerDelivery:
    """How one partner receives: webhook (we POST) or pull (it fetches its inbox)."""

    mode: str
    format: str
    url: str | None
    secret: Secret | None
    settings: DeliverySettings


@dataclass(frozen=True, slots=True)
class FolderDrop:
    """A watched folder for one partner's batch files, in one format."""

    path: Path
    format: str


@dataclass(frozen=True, slots=True)
class PartnerInbound:
    """How a partner sends besides HTTP, and its per-format adapter options."""

    ods_code: str | None = None
    """The partner's ODS code: an MLLP message's MSH-4 must equal it."""
    mllp: bool = False
    folder_drop: FolderDrop | None = None
    adapter_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per format name; ``*_file`` options already read and passed without the suffix."""


@dataclass(frozen=True, slots=True)
class PartnerRuntime:
    id: str
    token_hashes: frozenset[str]
    delivery: PartnerDelivery
    inbound: PartnerInbound = field(default_factory=PartnerInbound)


@dataclass(frozen=True, slots=True)
class Operator:
    id: str
    role: str
    token_hash: str


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """A web console user. ``password_hash`` is an argon2 PHC string (``gateway console
    hash-password``); the password itself is never configured, stored or logged."""

    id: str
    role: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """The web console (``console:`` in gateway.yaml; docs/console.md)."""

    users: tuple[ConsoleUser, ...] = ()
    secure_cookies: bool = True
    """Mark the session cookie ``Secure`` (and name it ``__Host-``): keep on behind TLS."""
    session_idle_minutes: float = 30.0
    session_max_hours: float = 12.0
    max_failed_sign_ins: int = 5
    """Per user id and per client address, within ``lockout_minutes``; then refused."""
    max_failed_sign_ins_per_address: int = 20
    lockout_minutes: float = 15.0
    sample_seconds: float = 10.0
    """How often queue figures are sampled for the overview's one-hour charts."""


def _console(raw: Mapping[str, Any] | None) -> ConsoleSettings:
    raw = raw or {}
    return ConsoleSettings(
        users=tuple(ConsoleUser(u["id"], u["role"], u["password_hash"]) for u in raw.get("users", ())),
        **{k: raw[k] for k in ConsoleSettings.__dataclass_fields__ if k != "users" and k in raw},
    )


@dataclass(frozen=True)
class Settings:
    config_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    db_path: Path = Path("data/gateway.db")
    synchronous: str = "FULL"
    store_backend: str = "sqlite"
    """``sqlite`` (embedded, the default), ``postgresql`` (scale-out: several instances) or
    ``rabbitmq-postgresql`` (state in PostgreSQL, deliveries on RabbitMQ)."""
    database_url: Secret | None = None
    """The PostgreSQL DSN (``store.url``, or ``GATEWAY_DATABASE_URL`` which wins); may hold a
    password, so it is a ``Secret`` and MUST NOT be logged."""
    database_pool_size: int = 10
    amqp_url: Secret | None = None
    """The RabbitMQ URL (``store.amqp_url``, or ``GATEWAY_AMQP_URL`` which wins); may hold a
    password, so it is a ``Secret`` and MUST NOT be logged."""
    amqp_prefix: str = "gateway"
    """The prefix of every queue and exchange name (several deployments can share a broker)."""
    amqp_prefetch: int = 50
    """Unacknowledged messages per partner per instance."""
    keyring_path: Path = Path("data/keyring.json")
    create_keyring: bool = False
    max_body_bytes: int = 256 * 1024
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    delivery_process: str = "inline"
    """``inline``: the delivery workers run on the server's event loop (the default).
    ``separate``: ``serve`` runs them in a ``gateway deliver`` child process it supervises,
    so ingest and delivery use two cores (docs/operations.md)."""
    operators: tuple[Operator, ...] = ()
    policy_watch_seconds: float = 2.0
    """Reload the policy when its files change (0 turns the watch off)."""
    review_check_seconds: float = 30.0
    consent_sync_seconds: float = 1.0
    """How often held decisions are checked against their deadline."""
    mllp_host: str = "127.0.0.1"
    mllp_port: int | None = None
    """The HL7 v2 MLLP listener's port; ``None``: no listener."""
    mllp_max_message_bytes: int = 1024 * 1024
    mllp_idle_timeout_seconds: float = 300.0
    folder_poll_seconds: float = 2.0
    folder_max_file_bytes: int = 32 * 1024 * 1024
    known_la_codes: frozenset[str] = frozenset()
    """UPN local-authority codes this deployment expects; another is a warning. Empty: python-stdnum's
    national list decides."""
    console: ConsoleSettings = field(default_factory=ConsoleSettings)

    @property
    def delivery_socket(self) -> Path:
        """The delivery process's status socket (``/metrics``, ``/circuits``), mode 0600."""
        return self.data_dir / "delivery.sock"


MAX_UNIX_SOCKET_PATH = 107
"""Bytes in a unix socket path (``sun_path`` holds 108 with the terminating NUL)."""


@dataclass(frozen=True)
class Deployment:
    settings: Settings
    policy: PolicySnapshot
    partners: Mapping[str, PartnerRuntime]


def read_yaml(path: Path) -> Any:
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML") from None


def _check(file: Path, schema: str, document: Any) -> None:
    problems = schema_violations(schema_validator(schema), document)
    if problems:
        raise ConfigError(_format(file, problems))


def _format(file: Path | str, problems: list[Violation]) -> str:
    return "\n".join(f"{file}: {v.field} ({v.rule}): {v.message}" for v in problems)


def load_policy_documents(config_dir: Path) -> dict[str, Any]:
    docs: dict[str, Any] = {}
    for name in POLICY_FILES:
        path = config_dir / name
        if not path.exists():
            raise ConfigError(f"{path}: file not found (a deployment needs {', '.join(POLICY_FILES)})")
        docs[name] = read_yaml(path)
    return docs


def load_policy(config_dir: Path) -> PolicySnapshot:
    try:
        return compile_policy(load_policy_documents(config_dir), default_dictionary())
    except PolicyError as exc:
        raise ConfigError(
            "\n".join(f"{config_dir / f}: {v.field} ({v.rule}): {v.message}" for f, v in exc.problems)
        ) from None


def load_settings(config_dir: Path) -> Settings:
    path = config_dir / "gateway.yaml"
    raw: dict[str, Any] = read_yaml(path) if path.exists() else {}
    raw = raw or {}
    _check(path, "gateway-settings.schema.json", raw)
    data_dir = _resolve(config_dir, raw.get("data_dir", "data"))
    store = raw.get("store", {})
    store_backend, database_url = _store_backend(path, store)
    keyring = raw.get("keyring", {})
    return Settings(
        config_dir=config_dir,
        host=raw.get("listen", {}).get("host", "127.0.0.1"),
        port=int(raw.get("listen", {}).get("port", 8080)),
        data_dir=data_dir,
        db_path=_resolve(data_dir, store.get("path", "gateway.db")),
        synchronous=store.get("synchronous", "FULL"),
        store_backend=store_backend,
        database_url=database_url,
        database_pool_size=int(store.get("pool_size", 10)),
        amqp_url=_amqp_url(path, store_backend, store),
        amqp_prefix=str(store.get("amqp_prefix", "gateway")),
        amqp_prefetch=int(store.get("amqp_prefetch", 50)),
        keyring_path=_resolve(data_dir, keyring.get("path", "keyring.json")),
        create_keyring=bool(keyring.get("create_if_missing", False)),
        max_body_bytes=int(raw.get("limits", {}).get("max_body_bytes", 256 * 1024)),
        delivery=DeliverySettings(**{k: v for k, v in raw.get("delivery", {}).items() if k != "process"}),
        delivery_process=_delivery_process(path, raw.get("delivery", {}).get("process", "inline"), data_dir),
        operators=tuple(Operator(o["id"], o["role"], o["token_sha256"]) for o in raw.get("operators", ())),
        policy_watch_seconds=float(raw.get("policy_watch_seconds", 2.0)),
        review_check_seconds=float(raw.get("review_check_seconds", 30.0)),
        consent_sync_seconds=float(raw.get("consent_sync_seconds", 1.0)),
        mllp_host=raw.get("mllp", {}).get("host", "127.0.0.1"),
        mllp_port=raw["mllp"]["port"] if "mllp" in raw else None,
        mllp_max_message_bytes=int(raw.get("mllp", {}).get("max_message_bytes", 1024 * 1024)),
        mllp_idle_timeout_seconds=float(raw.get("mllp", {}).get("idle_timeout_seconds", 300.0)),
        folder_poll_seconds=float(raw.get("folder_drop", {}).get("poll_seconds", 2.0)),
        folder_max_file_bytes=int(raw.get("folder_drop", {}).get("max_file_bytes", 32 * 1024 * 1024)),
        known_la_codes=frozenset(raw.get("identifiers", {}).get("known_la_codes", ())),
        console=_console(raw.get("console")),
    )


def _delivery_process(path: Path, mode: str, data_dir: Path) -> str:
    """``delivery.process`` (the schema checked its value); ``separate`` needs a data dir
    whose socket path fits a unix socket address."""
    socket_path = data_dir / "delivery.sock"
    if mode == "separate" and len(os.fsencode(socket_path)) > MAX_UNIX_SOCKET_PATH:
        raise ConfigError(
            f"{path}: /delivery/process (socket-path-length): separate needs the socket "
            f"{socket_path} but a unix socket path holds at most {MAX_UNIX_SOCKET_PATH} bytes; "
            "choose a shorter data_dir"
        )
    return mode


DATABASE_URL_ENV = "GATEWAY_DATABASE_URL"


def _store_backend(path: Path, store: Mapping[str, Any]) -> tuple[str, Secret | None]:
    """The store backend and, for PostgreSQL, its DSN: ``GATEWAY_DATABASE_URL`` (so a
    password need not be written in a file) or else ``store.url``."""
    backend = str(store.get("backend", "sqlite"))
    env_url = os.environ.get(DATABASE_URL_ENV)
    url = env_url or store.get("url")
    if backend not in ("postgresql", "rabbitmq-postgresql"):
        return backend, None
    if not url:
        raise ConfigError(
            f"{path}: /store/url (postgresql-needs-url): store.backend is {backend} but no database "
            f"URL is set; set store.url or the environment variable {DATABASE_URL_ENV}"
        )
    return backend, Secret(str(url))


AMQP_URL_ENV = "GATEWAY_AMQP_URL"


def _amqp_url(path: Path, backend: str, store: Mapping[str, Any]) -> Secret | None:
    """For ``rabbitmq-postgresql``, the broker URL: ``GATEWAY_AMQP_URL`` or else ``store.amqp_url``."""
    if backend != "rabbitmq-postgresql":
        return None
    url = os.environ.get(AMQP_URL_ENV) or store.get("amqp_url")
    if not url:
        raise ConfigError(
            f"{path}: /store/amqp_url (rabbitmq-needs-url): store.backend is rabbitmq-postgresql but no "
            f"AMQP URL is set; set store.amqp_url or the environment variable {AMQP_URL_ENV}"
        )
    return Secret(str(url))


def load_deployment(config_dir: Path, *, overrides: Mapping[str, Any] | None = None) -> Deployment:
    """Everything a gateway needs, validated. ``overrides`` replace settings (CLI flags)."""
    config_dir = config_dir.resolve()
    if not config_dir.is_dir():
        raise ConfigError(f"{config_dir}: not a directory")
    settings = load_settings(config_dir)
    if overrides:
        settings = replace(settings, **overrides)
    policy = load_policy(config_dir)
    secrets = _load_secrets(config_dir)
    partners_doc = read_yaml(config_dir / "partners.yaml")
    partners: dict[str, PartnerRuntime] = {}
    for i, p in enumerate(partners_doc["partners"]):
        d = p["delivery"]
        overrides_d = {k: d[k] for k in DeliverySettings.__dataclass_fields__ if k in d}
        mode = d["mode"]
        secret = secrets.get(p["id"])
        if mode == "webhook" and secret is None:
            raise ConfigError(
                f"{config_dir / 'partners.yaml'}: /partners/{i}/delivery (webhook-secret): "
                f"no webhook secret for {p['id']} in secrets.yaml or "
                f"{_secret_env(p['id'])}"
            )
        partners[p["id"]] = PartnerRuntime(
            id=p["id"],
            token_hashes=frozenset(p.get("token_sha256", ())),
            delivery=PartnerDelivery(
                mode, d["format"], d.get("url"), secret, replace(settings.delivery, **overrides_d)
            ),
            inbound=_inbound(config_dir, i, p),
        )
    return Deployment(settings, policy, partners)


def _inbound(config_dir: Path, index: int, partner: Mapping[str, Any]) -> PartnerInbound:
    raw = partner.get("inbound", {})
    drop = raw.get("folder_drop")
    options: dict[str, dict[str, Any]] = {}
    for fmt, opts in raw.get("adapter_options", {}).items():
        options[fmt] = {}
        for key, value in opts.items():
            if not key.endswith("_file"):
                options[fmt][key] = value
                continue
            where = f"/partners/{index}/inbound/adapter_options/{fmt}/{key}"
            path = _resolve(config_dir, str(value))
            if not path.is_file():
                raise ConfigError(
                    f"{config_dir / 'partners.yaml'}: {where} (file-exists): no such file {value!r} "
                    "(paths are relative to the deployment folder)"
                )
            options[fmt][key.removesuffix("_file")] = read_yaml(path)
    ods_code = partner.get("identifiers", {}).get("ods_code")
    if raw.get("mllp") and not ods_code:
        raise ConfigError(
            f"{config_dir / 'partners.yaml'}: /partners/{index}/inbound/mllp (mllp-needs-ods-code): "
            "an MLLP sender is known by MSH-4; set identifiers.ods_code"
        )
    return PartnerInbound(
        ods_code=ods_code,
        mllp=bool(raw.get("mllp", False)),
        folder_drop=FolderDrop(_resolve(config_dir, drop["path"]), drop["format"]) if drop else None,
        adapter_options=options,
    )


def _secret_env(partner_id: str) -> str:
    return "GATEWAY_WEBHOOK_SECRET_" + partner_id.upper().replace("-", "_")


def _load_secrets(config_dir: Path) -> dict[str, Secret]:
    path = config_dir / "secrets.yaml"
    raw: dict[str, Any] = (read_yaml(path) or {}) if path.exists() else {}
    _check(path, "secrets.schema.json", raw)
    out = {pid: Secret(value) for pid, value in raw.get("webhook_secrets", {}).items()}
    prefix = "GATEWAY_WEBHOOK_SECRET_"
    for key, value in os.environ.items():
        if key.startswith(prefix):
            out[key[len(prefix) :].lower().replace("_", "-")] = Secret(value)
    return out


def _resolve(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else (base / p)


def with_data_dir(deployment: Deployment, data_dir: Path) -> Deployment:
    """The same deployment with its database and keyring under another folder."""
    s = deployment.settings
    data_dir = data_dir.resolve()
    _delivery_process(s.config_dir / "gateway.yaml", s.delivery_process, data_dir)
    settings = replace(
        s, data_dir=data_dir, db_path=data_dir / s.db_path.name, keyring_path=data_dir / s.keyring_path.name
    )
    return replace(deployment, settings=settings)
