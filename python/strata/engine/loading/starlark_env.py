"""Evaluating Starlark with starlark-pyo3, and turning its errors into ours.

One place knows the dialect, the global functions and how an error raised
inside Starlark (or inside a Python callable Starlark called) becomes a
`UserError` that keeps Starlark's `file:line:column` and source snippet. A
Python exception that is not a `UserError` is a bug in strata and is re-raised
as is, so the CLI prints its traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import starlark as sl

from strata.engine.loading.build_settings import OptionError
from strata.engine.loading.labels import label_structs_as_text
from strata.errors import UserError

GLOBALS = sl.Globals.extended_by(
    [
        sl.LibraryExtension.StructType,
        sl.LibraryExtension.Json,
        sl.LibraryExtension.Print,
        sl.LibraryExtension.Map,
        sl.LibraryExtension.Filter,
        sl.LibraryExtension.Partial,
        sl.LibraryExtension.CallStack,
    ]
)
DIALECT = sl.Dialect.extended()

_SPAN_RE = re.compile(r"^\s*--> (?P<where>\S+:\d+:\d+)\s*$", re.M)
_ERROR_RE = re.compile(r"^error: (?P<msg>.*)$", re.M)
_LABEL_FIRST = re.compile(r"^@?[\w.-]*//[^:\s]*:\S+: ")


@dataclass
class CallableErrors:
    """The last exception a Python callable raised, for `convert_error`.

    starlark-pyo3 keeps only the text of an exception raised inside a
    callable; this remembers the object so a bug keeps its traceback.
    """

    pending: BaseException | None = field(default=None)
    source: Callable[[str], str | None] = field(default=lambda _name: None)
    """Reads a file by its display name, to place errors inside builtins on the user's line."""

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised after the Starlark frame
                self.pending = exc
                raise

        return call


def convert_error(err: sl.StarlarkError, errors: CallableErrors) -> Exception:
    """The exception to raise for `err`: a UserError with span, or the original bug."""
    pending, errors.pending = errors.pending, None
    if isinstance(pending, Exception) and not isinstance(pending, UserError):
        return pending
    if isinstance(pending, OptionError):
        return pending  # a command-line flag's fault, not the line that first needed it
    text = str(err)
    span = _SPAN_RE.search(text)
    head = _ERROR_RE.search(text)
    msg = head.group("msg") if head else text.strip().splitlines()[-1]
    if isinstance(pending, UserError):
        msg = str(pending)
    else:
        msg = re.sub(r"^(fail|UserError): ", "", msg)
    msg = label_structs_as_text(msg)
    attr = re.search(r"Object of type `dict` has no attribute `(\w+)`", msg)
    if attr:
        msg += (
            f"; a dependency (Target) supports only dep[Provider] in strata, so write "
            f"dep[DefaultInfo].{attr.group(1)} for dep.{attr.group(1)}"
            if attr.group(1) in ("files", "default_runfiles", "data_runfiles", "files_to_run")
            else f"; a dependency (Target) supports only dep[Provider] in strata (got "
            f"dep.{attr.group(1)})"
        )
    method = re.search(r"Object of type `struct` has no attribute `(to_json|to_proto)`", msg)
    if method:
        msg += (
            f"; strata's structs list {method.group(1)} in dir() but do not have the "
            "method (starlark-pyo3 structs have none): use json.encode(x) for to_json"
        )
    where = span.group("where") if span else None
    snippet = ""
    if span:
        snippet = "\n".join(
            line for line in text[span.end() :].splitlines() if line.strip() not in ("", "|")
        )
    frames = re.findall(r"^  \* (\S+):(\d+), in (\S+)\n {6}(.*)$", text, re.M)
    user = [f for f in frames if not f[0].startswith("<")]
    if where and where.startswith("<") and user:
        # The error surfaced inside the builtins (builtins/*.bzl, shown as
        # `<builtins/...>`): point at the user's call instead.
        file, line, _fn, src = user[-1]
        full = (errors.source(file) or "").splitlines()
        original = full[int(line) - 1] if int(line) <= len(full) else src
        col = len(original) - len(original.lstrip()) + 1
        where = f"{file}:{line}:{col}"
        snippet = f"{line} | {original}"
    elif where and where.startswith("<") and _LABEL_FIRST.match(msg):
        # Raised by the builtins after the user's code returned (a rule implementation's
        # return value): the message names the target, builtins' source would only confuse.
        where, snippet = None, ""
    trace = "\n".join(f"  called from {f}:{ln} in {fn}" for f, ln, fn, _ in user[:-1])
    detail = "\n".join(part for part in (msg, snippet, trace) if part)
    return UserError(detail, where=where)


_RAW_HINT = re.compile(r"(?<!\w)[rR]['\"]")
_TRIPLES = ('"""', "'''")


def raw_strings_fixed(source: str) -> str:
    """`source` with each raw string literal that holds a backslash before a quote
    rewritten as the equivalent ordinary literal.

    In Starlark, as under Bazel, the raw string `r"a\\"b"` is the four characters
    `a\\"b`: a raw string keeps the backslash before a quote. starlark-pyo3
    (2026.1.3) drops that backslash, which changed, e.g., the test scripts skylib's
    diff_test writes. Line numbers are kept; only the rewritten literal's own
    columns move.
    """
    if not _RAW_HINT.search(source):
        return source
    out: list[str] = []
    last = i = 0
    n = len(source)
    while i < n:
        c = source[i]
        if c == "#":
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        if c not in "'\"":
            i += 1
            continue
        quote = source[i : i + 3] if source[i : i + 3] in _TRIPLES else c
        j = i + len(quote)
        while j < n and not source.startswith(quote, j):
            if source[j] == "\\":
                j += 1
            elif len(quote) == 1 and source[j] == "\n":
                break  # unterminated: the parser reports it
            j += 1
        end = min(j + len(quote), n)
        raw = i > 0 and source[i - 1] in "rR" and (i < 2 or not _is_name_char(source[i - 2]))
        body = source[i + len(quote) : j]
        if raw and ("\\'" in body or '\\"' in body):
            escaped = body.replace("\\", "\\\\").replace(quote[0], "\\" + quote[0])
            out.append(source[last : i - 1] + quote + escaped + quote)
            last = end
        i = end
    out.append(source[last:])
    return "".join(out)


def _is_name_char(c: str) -> bool:
    return c.isalnum() or c == "_"


MAX_NESTING = 1000
"""How deep one expression may nest (brackets, and operators chained in one operand).

starlark-pyo3 parses and evaluates by recursion on the thread's stack, with no
bound of its own: a 3,000-deep list literal, or 10,000 `+1`s, overflow the
8 MiB stack of the main thread and kill the process (SIGSEGV). A limit well
below that, counted before parsing, makes such a file one error line. Real
BUILD and .bzl files stay far below it (Python refuses 200 nested brackets).
"""

_TOKEN = re.compile(
    r"""(?P<nl>\n)
    |(?P<skip>[ \t\r\f]+|\\\r?\n|\#[^\n]*)
    |(?P<str>[rRbB]{0,2}(?:"{3}(?:\\.|[^\\])*?"{3}|'{3}(?:\\.|[^\\])*?'{3}
        |"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
    |(?P<open>[(\[{])
    |(?P<close>[)\]}])
    |(?P<sep>[,;:]|=(?!=))
    |(?P<word>\w+)
    |(?P<op>\*\*|//|<<|>>|[=!<>]=|->|.)""",
    re.VERBOSE | re.DOTALL,
)


def check_nesting(filename: str, source: str) -> None:
    """A UserError at the first place an expression nests deeper than MAX_NESTING.

    The depth counted is an upper bound of the syntax tree's: the open brackets
    plus, at each of them, the tokens of the operand being written (a `,`, `:`,
    `=` or a new line outside brackets starts the next one), since each token
    adds at most one level. A string counts as one token, a comment as none.
    """
    if len(source) <= MAX_NESTING:
        return
    segments = [0]  # tokens of the current operand, outside brackets and per open one
    tokens = 0  # sum(segments)
    for m in _TOKEN.finditer(source):
        kind = m.lastgroup
        if kind == "skip":
            continue
        if kind == "nl":
            if len(segments) == 1:
                tokens -= segments[0]
                segments[0] = 0
            continue
        if kind == "sep":
            tokens -= segments[-1]
            segments[-1] = 0
            continue
        if kind == "open":
            segments.append(0)
        elif kind == "close":
            if len(segments) > 1:
                tokens -= segments.pop()
            segments[-1] += 1  # the bracketed group is one operand: `f()()` chains
            tokens += 1
            continue
        else:
            segments[-1] += 1
            tokens += 1
        if tokens + len(segments) - 1 > MAX_NESTING:
            line = source.count("\n", 0, m.start()) + 1
            column = m.start() - source.rfind("\n", 0, m.start())
            raise UserError(
                f"expression nested too deeply (got more than {MAX_NESTING} levels of "
                "brackets and chained operators); split it using variables",
                where=f"{filename}:{line}:{column}",
            )


def parse(filename: str, source: str) -> sl.AstModule:
    check_nesting(filename, source)
    try:
        return sl.parse(filename, raw_strings_fixed(source), DIALECT)
    except sl.StarlarkError as err:
        raise convert_error(err, CallableErrors()) from None


def evaluate(
    module: sl.Module,
    ast: sl.AstModule,
    loader: sl.FileLoader | None,
    errors: CallableErrors,
) -> None:
    try:
        sl.eval(module, ast, GLOBALS, loader)
    except sl.StarlarkError as err:
        raise convert_error(err, errors) from None
