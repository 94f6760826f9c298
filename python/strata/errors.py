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


def shorten(text: str, limit: int = 300) -> str:
    """`text` for an error line: kept whole up to `limit` characters, else its two ends.

    A 5,000-character path or a multi-megabyte command line would drown the
    one line an error is; its start and end are what tell it apart.
    """
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head - 30
    return f"{text[:head]}...[{len(text) - head - tail} characters]...{text[-tail:]}"
