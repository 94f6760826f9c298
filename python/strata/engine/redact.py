"""Secrets out of everything strata prints: remote-cache URLs and header values.

`--remote_cache=http://user:password@host/prefix` and
`--remote_header=Authorization=Bearer ...` carry credentials; an error about
a malformed URL, an unknown flag in `.strata.rc` or on the command line, or a
warning about the server must still name what it is about without them. The
URL is taken apart as text, never with a parser that could refuse it (a
malformed URL is exactly when we print it): everything up to the last `@` of
the authority is user information, and query and fragment may hold tokens.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://[userinfo@]: over-redacts a path containing '@' rather than leak a password
# holding '/'.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^\s'\"]*@")
_HEADER_FLAG = re.compile(r"(?P<flag>remote_header(?:=|\s+)['\"]?)(?P<value>[^'\"\n]+)")
_AUTH_VALUE = re.compile(
    r"(?P<name>\b(?:Proxy-)?Authorization\s*[=:]\s*)(?P<value>[^'\"\n]+)", re.IGNORECASE
)


def redact_url(url: str) -> str:
    """`http://user:pw@host:8080/p?token=x` → `http://***@host:8080/p?***`, for any text."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    head, query = rest[:cut], rest[cut : cut + 1]
    if "@" in head:
        head = MASK + "@" + head.rpartition("@")[2]
    return f"{scheme}{sep}{head}" + (query + MASK if query else "")


def redact_header(text: str) -> str:
    """`Name=Value` → `Name=***`; a value without a name (`Bearer abc`) is masked whole."""
    for sep in ("=", ":"):
        name, found, _ = text.partition(sep)
        if found and name and " " not in name.strip():
            return f"{name}{sep}{MASK}"
    return MASK


def redact_text(text: str) -> str:
    """Mask credentials in free text: URL user information, header flag values, Authorization."""
    text = _USERINFO.sub(lambda m: m["scheme"] + MASK + "@", text)
    text = _HEADER_FLAG.sub(lambda m: m["flag"] + redact_header(m["value"]), text)
    return _AUTH_VALUE.sub(lambda m: m["name"] + MASK, text)
