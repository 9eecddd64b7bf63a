"""The deterministic, seeded generator of the sample city Riverton.

`python -m devtools.sample --out data` writes every extract in docs/SAMPLE_CITY.md.
`SHIFTS` lists the genuine changes built into the data; `PROVIDER_EFFECTS` the true homeless
services provider effects that risk adjustment should recover.
"""

from devtools.sample.build import (
    DEFAULT_END, DEFAULT_REQUESTS, DEFAULT_SEED, DEFAULT_START, generate,
)
from devtools.sample.daily import REQUEST_TYPES, RequestType
from devtools.sample.schemas import EXTRACTS, SCHEMAS, arrow_schema
from devtools.sample.shifts import PROVIDER_EFFECTS, SHIFTS, ProviderEffect, Shift, shift

__all__ = [
    "DEFAULT_END", "DEFAULT_REQUESTS", "DEFAULT_SEED", "DEFAULT_START", "EXTRACTS",
    "PROVIDER_EFFECTS", "REQUEST_TYPES", "RequestType", "SCHEMAS", "SHIFTS", "ProviderEffect",
    "Shift", "arrow_schema", "generate", "shift",
]
