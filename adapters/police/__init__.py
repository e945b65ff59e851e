"""Police formats: Operation Encompass notification, Public Protection Notice (PPN) and
MARAC referral, as JSON documents described by our own schemas (no national schema exists),
each configurable per force with a field mapping (``adapters.field_mapping``).

See ``docs/formats/police.md`` for the field-by-field tables.
"""

from adapters.police.encompass import EncompassAdapter
from adapters.police.marac import MaracAdapter
from adapters.police.ppn import PpnAdapter

__all__ = ["EncompassAdapter", "MaracAdapter", "PpnAdapter"]
