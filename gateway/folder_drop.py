"""Folder drop: a watched directory per partner for batch files (CTF, CIN census).

For each partner with ``inbound.folder_drop`` in ``partners.yaml``::

    <path>/                 the partner (or its transfer agent) drops files here
    <path>/done/            each accepted file, moved, with <name>.receipt.json beside it
    <path>/rejected/        each refused file, moved, with <name>.error.json beside it

Contracts:

* A file is never deleted and never processed twice. Every message of a file is accepted
  with an idempotency key derived from the file's digest and the message's position, so a
  crash between the accept and the move re-processes the file on restart without creating
  anything new; the same bytes dropped again later are accepted as duplicates.
* A file is accepted whole or not at all: the batch is parsed before anything is stored,
  and an invalid record rejects the file (``pipeline.ingest_batch``).
* A file the gateway could not finish for its own reasons (the store is down) stays where it
  is and is tried again at the next poll.
* Senders write under a temporary name and rename when complete: names starting with ``.``
  or ending in ``.part`` or ``.tmp`` are not picked up, nor are symbolic links and
  directories. A file still growing between two looks is left for the next poll.
* The error report names rules and field paths, never values; receipts name message ids.
  Nothing about a file's content is logged.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web

from canonical import GatewayError, InvalidInput, Violation
from gateway.api.state import SERVICES
from gateway.config import PartnerRuntime
from gateway.errors import PayloadTooLarge
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline
from gateway.rejections import record_rejection
from gateway.store.base import Store

log = structlog.get_logger("gateway.folder_drop")

IGNORED_SUFFIXES = (".part", ".tmp")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one file: ``done``, ``rejected`` or ``retry`` (left in place)."""

    name: str
    result: str
    message_ids: tuple[str, ...] = ()


class FolderDrop:
    """Watches every partner's drop folder; ``poll`` processes what is there once."""

    def __init__(
        self,
        partners: Mapping[str, PartnerRuntime],
        pipeline: Pipeline,
        store: Store,
        metrics: Metrics,
        *,
        max_file_bytes: int,
    ) -> None:
        self._folders = {
            pid: p.inbound.folder_drop for pid, p in partners.items() if p.inbound.folder_drop is not None
        }
        self._pipeline = pipeline
        self._store = store
        self._metrics = metrics
        self._max_file_bytes = max_file_bytes
        self._sizes: dict[Path, int] = {}

    @property
    def watching(self) -> bool:
        return bool(self._folders)

    async def prepare(self) -> None:
        """Create each folder with its ``done/`` and ``rejected/`` (start-up)."""

        def make() -> None:
            for drop in self._folders.values():
                for sub in ("", "done", "rejected"):
                    (drop.path / sub).mkdir(parents=True, exist_ok=True)

        await asyncio.to_thread(make)

    async def poll(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for partner, drop in self._folders.items():
            for path in await asyncio.to_thread(self._ready_files, drop.path):
                outcomes.append(await self._process(partner, drop.format, path))
        return outcomes

    def _ready_files(self, folder: Path) -> list[Path]:
        """Complete-looking files, oldest first; a file whose size changed since the last look
        is still being written and waits."""
        ready = []
        entries = sorted(
            (e for e in os.scandir(folder) if e.is_file(follow_symlinks=False)),
            key=lambda e: (e.stat().st_mtime_ns, e.name),
        )
        for entry in entries:
            if entry.name.startswith(".") or entry.name.endswith(IGNORED_SUFFIXES):
                continue
            path = Path(entry.path)
            size = entry.stat().st_size
            if self._sizes.get(path) != size and size <= self._max_file_bytes:
                # First sight (or still growing): take it at the next look if unchanged.
                # Oversized files need no second look: they are refused either way.
                self._sizes[path] = size
                continue
            self._sizes.pop(path, None)
            ready.append(path)
        return ready

    async def _process(self, partner: str, format_name: str, path: Path) -> Outcome:
        try:
            body = await asyncio.to_thread(self._read, path)
            accepted = await self._pipeline.ingest_batch(partner, format_name, body)
        except InvalidInput as exc:  # PayloadTooLarge included
            await record_rejection(self._store, self._metrics, partner, exc, transport="folder-drop")
            await asyncio.to_thread(self._file_away, path, "rejected", _error_report(format_name, exc))
            log.warning("folder_drop.rejected", partner=partner, rule=exc.reason, adapter=format_name)
            return Outcome(path.name, "rejected")
        except GatewayError as exc:
            if exc.status >= 500:  # e.g. BrokerUnavailable: stored, not confirmed; keep the file
                log.error("folder_drop.retry_later", partner=partner, error=type(exc).__name__)
                return Outcome(path.name, "retry")
            # Refused for a reason that is not the file's content (e.g. a Forbidden source):
            # as final as invalid content, so file it away rather than retry for ever.
            await record_rejection(self._store, self._metrics, partner, exc, transport="folder-drop")
            report = {
                "format": format_name,
                "status": exc.status,
                "rule": exc.type_slug,
                "detail": exc.detail,
            }
            await asyncio.to_thread(self._file_away, path, "rejected", report)
            log.warning("folder_drop.rejected", partner=partner, rule=exc.type_slug, adapter=format_name)
            return Outcome(path.name, "rejected")
        except Exception as exc:  # noqa: BLE001 - our fault (store down): keep the file, retry next poll
            log.error("folder_drop.retry_later", partner=partner, error=type(exc).__name__)
            return Outcome(path.name, "retry")
        ids = tuple(a.message_id for a in accepted)
        receipt = {
            "format": format_name,
            "messages": [
                {
                    "message_id": a.message_id,
                    "duplicate": a.duplicate,
                    **({"warnings": [w.as_dict() for w in a.warnings]} if a.warnings else {}),
                }
                for a in accepted
            ],
        }
        await asyncio.to_thread(self._file_away, path, "done", receipt)
        log.info("folder_drop.accepted", partner=partner, adapter=format_name, messages=len(ids))
        return Outcome(path.name, "done", ids)

    def _read(self, path: Path) -> bytes:
        size = path.stat().st_size
        if size > self._max_file_bytes:
            raise PayloadTooLarge(
                [Violation("/", "max-file-bytes", f"the file must be at most {self._max_file_bytes} bytes")]
            )
        return path.read_bytes()

    @staticmethod
    def _file_away(path: Path, sub: str, report: Mapping[str, object]) -> None:
        """Move ``path`` into ``sub/`` under a name not yet taken there, report beside it.
        The report is written first: a crash between the two leaves the file to be processed
        again (idempotently), never a moved file without its report."""
        target_dir = path.parent / sub
        target = target_dir / path.name
        n = 0
        while target.exists():
            n += 1
            target = target_dir / f"{path.name}.{n}"
        kind = "receipt" if sub == "done" else "error"
        report_path = target.with_name(f"{target.name}.{kind}.json")
        tmp = report_path.with_name(f".{report_path.name}.tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, report_path)
        os.replace(path, target)


def _error_report(format_name: str, exc: InvalidInput) -> dict[str, object]:
    return {
        "format": format_name,
        "status": exc.status,
        "detail": exc.detail,
        "violations": [v.as_dict() for v in exc.violations],
    }


async def serve_folder_drops(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: poll every partner's drop folder while the gateway runs."""
    svc = app[SERVICES]
    s = svc.deployment.settings
    watcher = FolderDrop(
        svc.deployment.partners,
        svc.pipeline,
        svc.backend,
        svc.metrics,
        max_file_bytes=s.folder_max_file_bytes,
    )
    task: asyncio.Task[None] | None = None
    if watcher.watching:
        await watcher.prepare()

        async def loop() -> None:
            while True:
                await asyncio.sleep(s.folder_poll_seconds)
                try:
                    await watcher.poll()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a failed look is retried at the next poll
                    log.error("folder_drop.poll_failed", error=type(exc).__name__)

        task = asyncio.create_task(loop())
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
