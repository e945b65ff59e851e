"""``gateway demo``: the example deployment plus a demo receiver standing in for the
partners' webhooks, so a newcomer can send a message and watch each partner's copy arrive.

The receiver verifies each delivery's Standard Webhooks signature, keeps what it received
in memory (``GET /{partner}`` lists it) and prints one line per delivery. It is a demo and
a test aid, not a partner system.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

from gateway.app import create_app
from gateway.config import load_deployment
from gateway.mllp import MLLP_PORT
from gateway.server import start_site
from gateway.testing import Received, RecordingReceiver


def _print_delivery(item: Received) -> None:
    doc = item.payload or {}
    cats = sorted({i["category"] for i in doc.get("items", [])})
    roles = [p["role"] for p in doc.get("people", [])]
    print(
        f"[demo-receiver] {item.partner} received {item.webhook_id} "
        f"({doc.get('envelope', {}).get('event_type')}): people={roles} items={cats}",
        flush=True,
    )


async def run_receiver(port: int, secrets: dict[str, str]) -> None:
    async with RecordingReceiver(secrets, port=port, on_receive=_print_delivery) as rx:
        print(f"demo receiver listening on http://127.0.0.1:{rx.port}", flush=True)
        await _wait_for_signal()


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run_demo(config: Path, receiver_port: int) -> int:
    deployment = load_deployment(config)
    secrets = {
        pid: p.delivery.secret.reveal()
        for pid, p in deployment.partners.items()
        if p.delivery.secret is not None
    }

    async def main() -> None:
        receiver = await RecordingReceiver(secrets, port=receiver_port, on_receive=_print_delivery).start()
        rport = receiver.port
        s = deployment.settings
        app = create_app(deployment)
        gateway, gport = await start_site(app, s.host, s.port)
        base = f"http://{s.host}:{gport}"
        sample = (config / "messages" / "domestic-abuse-incident.json").resolve()
        extra = []
        if MLLP_PORT in app:
            extra.append(f"  HL7 v2 over MLLP    {s.mllp_host}:{app[MLLP_PORT]} (docs/formats/hl7v2.md)")
        extra += [
            f"  Folder drop         {p.inbound.folder_drop.path}/ ({p.inbound.folder_drop.format}, {pid})"
            for pid, p in deployment.partners.items()
            if p.inbound.folder_drop is not None
        ]
        print(_banner(base, f"http://127.0.0.1:{rport}", sample, extra), flush=True)
        try:
            await _wait_for_signal()
        finally:
            await gateway.cleanup()
            await receiver.stop()

    asyncio.run(main())
    return 0


def _banner(base: str, receiver: str, sample: Path, transports: list[str]) -> str:
    lines: list[Any] = [
        "",
        "Sharing gateway is running (example deployment, embedded SQLite).",
        f"  API                 {base}/v1/messages",
        f"  OpenAPI             {base}/openapi.json",
        f"  Health / readiness  {base}/healthz  {base}/readyz",
        f"  Metrics             {base}/metrics",
        f"  Queues (operator)   curl -H 'Authorization: Bearer demo-operator-token' {base}/v1/ops/queues",
        f"  Web console         {base}/console/  (demo-operator / demo-operator-password,",
        "                      demo-ig-lead / demo-ig-lead-password: deploy/example/gateway.yaml)",
        f"  Demo receiver       {receiver}/school-riverside-primary  {receiver}/csc-northshire",
        *transports,
        "",
        "Send the sample police notification (in another terminal):",
        f"  curl -sS -X POST {base}/v1/messages \\",
        "    -H 'Authorization: Bearer demo-police-token' \\",
        "    -H 'Content-Type: application/vnd.gateway.message+json' \\",
        f"    --data-binary @{sample}",
        "",
        "Then see what each partner received (the school gets no narrative, no risk assessment,",
        "no address):",
        f"  curl -sS {receiver}/school-riverside-primary",
        f"  curl -sS {receiver}/csc-northshire",
        "",
        "Stop with Ctrl-C.",
    ]
    return "\n".join(str(x) for x in lines)
