"""The storage layer's exceptions; each carries the HTTP status the web layer answers with."""

from __future__ import annotations

from typing import Any

from closetai import ClosetAIError


class NotFound(ClosetAIError):
    status = 404


class JobNotRunning(ClosetAIError):
    """A worker tried to finish a job that was meanwhile failed (e.g. by the restart sweep)."""

    status = 409


class AlreadyStored(ClosetAIError):
    """An upload whose content (sha256) is already stored or on its way in: `where` is Store.same_file's
    answer; the web layer turns it into a 409 linking to it (the caller may store it again on purpose)."""

    status = 409

    def __init__(self, message: str, where: dict[str, Any]):
        super().__init__(message)
        self.where = where


class StoreError(ClosetAIError):
    """The database or media folder could not be written (disk full, permissions, locked database)."""

    status = 503
