"""Format adapters: pure translation between partners' formats and the canonical model."""

from adapters.base import Adapter
from adapters.registry import AdapterRegistry, default_registry

__all__ = ["Adapter", "AdapterRegistry", "default_registry"]
