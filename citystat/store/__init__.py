"""CityStat's state store: sessions, commitments, narratives, annotations, alerts,
notebooks and the audit trail, in SQLite (default) or PostgreSQL. See docs/STATE_STORE.md."""

from citystat.store.engine import default_url, make_engine, normalise_url
from citystat.store.errors import ConflictError, InvalidInput, NotFound, SchemaTooNew, StoreConfigError, StoreError
from citystat.store.migrations import LATEST_VERSION, MIGRATIONS, current_version, migrate
from citystat.store.models import Alert, Annotation, AuditEntry, Commitment, Delivery, Narrative, Notebook, ReviewItem, Session
from citystat.store.store import GRAINS, Store, open_store

__all__ = [
                     "GRAINS",
                     "LATEST_VERSION",
                     "MIGRATIONS",
                     "Alert",
                     "Annotation",
                     "AuditEntry",
                     "Commitment",
                     "Delivery",
                     "ConflictError",
                     "InvalidInput",
                     "Narrative",
                     "NotFound",
                     "Notebook",
                     "ReviewItem",
                     "SchemaTooNew",
                     "Session",
                     "Store",
                     "StoreConfigError",
                     "StoreError",
                     "current_version",
                     "default_url",
                     "make_engine",
                     "migrate",
                     "normalise_url",
                     "open_store",
]
