"""Registry names checked at analysis time, and shell quoting for generated scripts.

Registry hosts, repositories and tags end up in registry requests and in the
scripts `image_push` and `image_load` write, so a value outside the reference
grammar is refused before anything is written, naming the attribute. Starlark
has no regular expressions: each check is a small scan over character
classes, written once here. The Python side checks the same grammar again
(`python/strata/oci/reference.py`).

Grammar (OCI distribution / distribution/reference):
https://github.com/distribution/reference/blob/main/reference.go

    registry   := host [":" port]           host: domain-name | "[" IPv6 "]"
    repository := component ("/" component)*
    component  := [a-z0-9]+ ((\\.|_|__|-+) [a-z0-9]+)*
    tag        := [a-zA-Z0-9_] [a-zA-Z0-9._-]{0,127}

`shell_quote` makes any string one inert shell word, so even a value that
passed these checks can never be read as shell syntax.
"""

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = "0123456789"
_HEX = _DIGITS + "abcdefABCDEF"
_COMPONENT_CHARS = _LOWER + _DIGITS
_DOMAIN_CHARS = _LOWER + _UPPER + _DIGITS
_TAG_FIRST = _LOWER + _UPPER + _DIGITS + "_"
_TAG_CHARS = _TAG_FIRST + ".-"
_MAX_NAME = 255
_MAX_TAG = 128

REGISTRY_HINT = "use host[:port], optionally after http:// or https://, e.g. registry.example.com:5000"
REPOSITORY_HINT = "use lowercase letters and digits joined by '.', '_', '__' or '-', in '/'-separated parts, e.g. team/app"
TAG_HINT = "use up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-', e.g. 1.0"

def _chars(s):
    return [s[i] for i in range(len(s))]

def _only(s, allowed):
    for c in _chars(s):
        if c not in allowed:
            return False
    return True

def _is_component(s):
    """[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*"""
    if not s or not _only(s, _COMPONENT_CHARS + "._-"):
        return False
    if s[0] not in _COMPONENT_CHARS or s[-1] not in _COMPONENT_CHARS:
        return False
    run = ""
    for c in _chars(s):
        if c in _COMPONENT_CHARS:
            if run and run not in (".", "_", "__") and run.replace("-", "") != "":
                return False
            run = ""
        else:
            run += c
    return True

def _is_domain_component(s):
    """[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]"""
    return bool(s) and _only(s, _DOMAIN_CHARS + "-") and s[0] != "-" and s[-1] != "-"

def _is_port(s):
    if not s or len(s) > 5 or not _only(s, _DIGITS):
        return False
    return int(s) > 0 and int(s) <= 65535

def _is_host(host):
    if host.startswith("["):
        inner = host[1:-1] if host.endswith("]") else ""
        return ":" in inner and _only(inner, _HEX + ":.")
    return all([_is_domain_component(part) for part in host.split(".")])

def registry_error(value):
    """Why `value` is not `[http://|https://]host[:port]`, or "" when it is."""
    rest = value
    for scheme in ("http://", "https://"):
        if rest.lower().startswith(scheme):
            rest = rest[len(scheme):]
            break
    rest = rest.rstrip("/")
    if not rest:
        return "missing registry host"
    host, port = rest, ""
    if rest.startswith("["):
        end = rest.find("]")
        if end >= 0 and rest[end + 1:].startswith(":"):
            host, port = rest[:end + 1], rest[end + 2:]
            if not port:
                return "invalid registry port"
    elif ":" in rest:
        host, port = rest.split(":", 1)
        if not port:
            return "invalid registry port"
    if not _is_host(host):
        return "invalid registry host"
    if port and not _is_port(port):
        return "invalid registry port (1 to 65535)"
    return ""

def repository_error(value):
    """Why `value` is not a repository path, or "" when it is."""
    if not value:
        return "must not be empty"
    if len(value) > _MAX_NAME:
        return "longer than %d characters" % _MAX_NAME
    for part in value.split("/"):
        if not _is_component(part):
            return "invalid repository"
    return ""

def tag_error(value):
    """Why `value` is not a tag, or "" when it is."""
    if not value or len(value) > _MAX_TAG or value[0] not in _TAG_FIRST or not _only(value, _TAG_CHARS):
        return "invalid tag"
    return ""

def reference_error(value):
    """Why `value` is not `name[:tag]` (name: [host[:port]/]repository), or "" when it is."""
    if not value:
        return "must not be empty"
    name, tag = value, ""
    colon = value.rfind(":")
    if colon > value.rfind("/"):
        name, tag = value[:colon], value[colon + 1:]
        if tag_error(tag):
            return "invalid tag in reference"
    parts = name.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        if registry_error(first):
            return "invalid registry in reference"
        name = "/".join(parts[1:])
    if repository_error(name):
        return "invalid name in reference"
    return ""

REFERENCE_HINT = "use name[:tag], e.g. team/app:1.0, or just a tag"

def _reference_or_tag_error(value):
    return "" if not tag_error(value) else reference_error(value)

_KINDS = {
    "reference": (_reference_or_tag_error, REFERENCE_HINT),
    "registry": (registry_error, REGISTRY_HINT),
    "repository": (repository_error, REPOSITORY_HINT),
    "tag": (tag_error, TAG_HINT),
}

def name_problem(kind, value):
    """`<what is wrong> (got <value>); <how to fix>` for a bad `kind` name, or "" when it is fine."""
    check, hint = _KINDS[kind]
    what = check(value)
    if not what:
        return ""
    return "%s (got %s); %s" % (what, repr(value), hint)

def shell_quote(s):
    """`s` as one single-quoted shell word: nothing in it is expanded or run."""
    return "'" + s.replace("'", "'\\''") + "'"
