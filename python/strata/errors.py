"""One root for mistakes a user can fix.

Anything raised as a `UserError` is shown as a single line
(`error: <where>: <what> (got <value>); <how to fix>`) with exit status 1.
A failure of the machine rather than of strata (a full disk, a read-only
file system, a name too long for it) is shown the same way
(`environment_error`). A `UsageError` (a mistake on the command line or in an
rc file's flags) is one line too, with exit status 2, as Bazel's command-line
errors are. Every other exception is a bug in strata: the CLI prints a
traceback and a "please report" line and exits 37 (Bazel's code for an
internal error).
"""

from __future__ import annotations

import errno
import os


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


_ENVIRONMENT_FIXES = {
    errno.ENOSPC: "free some space on that file system and build again",
    errno.EDQUOT: "free some space within your disk quota and build again",
    errno.EROFS: "build with --output_base (and --disk_cache) on a writable file system",
    errno.ENAMETOOLONG: "shorten it: a file name holds at most 255 bytes, a path 4,095",
    errno.EMFILE: "raise the open-file limit (ulimit -n) or build with fewer --jobs",
    errno.ENFILE: "close other programs or build with fewer --jobs",
}


def environment_error(err: OSError, where: str | None = None) -> UserError | None:
    """The user error for a failure of the machine, not of strata (a full disk, a read-only
    file system, a name too long), or None when `err` is something else (a bug)."""
    fix = _ENVIRONMENT_FIXES.get(err.errno or 0)
    if fix is None:
        return None
    what = err.strerror or os.strerror(err.errno or 0)
    path = os.fsdecode(err.filename) if err.filename is not None else ""
    got = f" (got {shorten(path)})" if path else ""
    return UserError(f"{what}{got}; {fix}", where=where or "strata")
