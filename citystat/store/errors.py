"""Errors raised by the state store, each saying which field or row is at fault."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


class StoreError(Exception):
    """Base class of every state-store error."""


class InvalidInput(StoreError, ValueError):
    """A value given to the store is not acceptable; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(StoreError, LookupError):
    """The row to update or delete does not exist (any more)."""

    def __init__(self, entity: str, entity_id: Any) -> None:
        super().__init__(f"{entity} {entity_id!r} does not exist")
        self.entity = entity
        self.entity_id = entity_id


class ConflictError(StoreError):
    """Someone else changed the row since the caller read it.

    Carries the row as it is now (`current`) so the UI can show both versions and the
    user's text is never silently dropped.
    """

    def __init__(self, entity: str, entity_id: Any, expected_version: int | None,
                 current: Any) -> None:
        found = getattr(current, "version", None)
        super().__init__(
            f"{entity} {entity_id!r} was changed by someone else "
            f"(you edited version {expected_version}, it is now at version {found}); "
            "reload it and apply your change again")
        self.entity = entity
        self.entity_id = entity_id
        self.expected_version = expected_version
        self.current = current


class StoreConfigError(StoreError, ValueError):
    """The store URL or location is unusable (wrong scheme, inside data/, ...)."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer CityStat than this one."""


# What an unreachable store raises (server down, restarting, socket gone): pages that need the
# store say it is not answering and retry; the others carry on without it.
OUTAGE_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError, ConnectionError)
