"""One root for mistakes a user can fix.

Anything raised as a `UserError` is shown as a single line
(`error: <where>: <what> (got <value>); <how to fix>`) with exit status 1.
Every other exception is a bug in strata: the CLI prints a traceback and a
"please report" line and exits 2.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input: bad request, bad BUILD file, bad archive."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        self.detail = message
        super().__init__(f"{where}: {message}" if where else message)


def format_error(err: UserError) -> str:
    """The single stderr line for a user error."""
    return f"error: {err}"
