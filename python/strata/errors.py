"""One root for mistakes a user can fix.

Anything raised as a `UserError` is shown as a single line
(`error: <where>: <what> (got <value>); <how to fix>`) with exit status 1;
a `UsageError` (a mistake on the command line or in an rc file's flags) is
one line too, with exit status 2, as Bazel's command-line errors are. Every
other exception is a bug in strata: the CLI prints a traceback and a
"please report" line and exits 37 (Bazel's code for an internal error).
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input: bad request, bad BUILD file, bad archive."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        self.detail = message
        super().__init__(f"{where}: {message}" if where else message)


class UsageError(UserError):
    """A mistake in how strata was called: an unknown command or flag, a flag's bad value.

    Exit status 2, as Bazel's; the text follows Bazel 4.2.3's wording where it has one.
    """


def format_error(err: UserError) -> str:
    """The single stderr line for a user error."""
    return f"error: {err}"
