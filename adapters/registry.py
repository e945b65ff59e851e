"""Adapters by format name (partner configuration) and by content type (inbound HTTP)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from adapters.base import Adapter
from adapters.canonical_json import CanonicalJsonAdapter


@dataclass(frozen=True)
class AdapterRegistry:
    by_name: Mapping[str, Adapter]
    by_content_type: Mapping[str, Adapter]

    @classmethod
    def of(cls, adapters: Iterable[Adapter]) -> AdapterRegistry:
        names: dict[str, Adapter] = {}
        types: dict[str, Adapter] = {}
        for adapter in adapters:
            if adapter.name in names:
                raise ValueError(f"two adapters are named {adapter.name!r}")
            names[adapter.name] = adapter
            for ct in adapter.content_types:
                types.setdefault(ct, adapter)
        return cls(names, types)

    def for_content_type(self, content_type: str) -> Adapter | None:
        """The adapter for a Content-Type header value (parameters such as charset ignored)."""
        return self.by_content_type.get(content_type.split(";", 1)[0].strip().lower())


def default_registry() -> AdapterRegistry:
    """Every format this release supports."""
    return AdapterRegistry.of([CanonicalJsonAdapter()])
