"""Adapters by format name (partner configuration) and by content type (inbound HTTP).

A partner with ``inbound.adapter_options`` gets its own registry (``for_partner``), in
which those formats are replaced by copies configured for it; every other partner uses the
default one. Both are built once at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from adapters import social_care
from adapters.base import Adapter, AdapterOptionsError, ConfigurableAdapter
from adapters.canonical_json import CanonicalJsonAdapter
from adapters.cin_census import CinCensusAdapter
from adapters.ctf import CtfAdapter
from adapters.education import AttendanceConcernAdapter, ExclusionAdapter
from adapters.fhir import FhirR4Adapter
from adapters.hl7v2 import Hl7v2Adapter
from adapters.police import EncompassAdapter, MaracAdapter, PpnAdapter


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
                if ct in types:
                    raise ValueError(f"content type {ct!r} is claimed by {types[ct].name} and {adapter.name}")
                types[ct] = adapter
        return cls(names, types)

    def for_content_type(self, content_type: str) -> Adapter | None:
        """The adapter for a Content-Type header value (parameters such as charset ignored)."""
        return self.by_content_type.get(content_type.split(";", 1)[0].strip().lower())

    def configured(self, options: Mapping[str, Mapping[str, Any]]) -> AdapterRegistry:
        """This registry with each format named in ``options`` configured by them.

        Raises ``AdapterOptionsError`` naming the format for an unknown format, a format that
        takes no options, or options the format refuses.
        """
        if not options:
            return self
        replaced = dict(self.by_name)
        for name, opts in options.items():
            adapter = self.by_name.get(name)
            if adapter is None:
                raise AdapterOptionsError(
                    f"{name}: not a format of this gateway ({', '.join(sorted(self.by_name))})"
                )
            if not isinstance(adapter, ConfigurableAdapter):
                raise AdapterOptionsError(f"{name}: this format takes no options")
            replaced[name] = adapter.configure(opts)
        return AdapterRegistry.of(replaced.values())


def default_registry() -> AdapterRegistry:
    """Every format this release supports."""
    return AdapterRegistry.of(
        [
            CanonicalJsonAdapter(),
            FhirR4Adapter(),
            Hl7v2Adapter(),
            EncompassAdapter(),
            PpnAdapter(),
            MaracAdapter(),
            *(make() for make in social_care.ADAPTERS),
            CinCensusAdapter(),
            CtfAdapter(),
            ExclusionAdapter(),
            AttendanceConcernAdapter(),
        ]
    )
