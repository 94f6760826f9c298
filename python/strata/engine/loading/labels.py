"""Bazel labels and target patterns, parsed the way Bazel 4 parses them.

A label names a target: `@repo//pkg:name`. The main repository is spelled with
an empty repo (`//pkg:name`); labels written inside another repository are
relative to that repository, so `Label.parse` always takes the repository and
package the text was written in. Target patterns (`//pkg/...`, `//pkg:all`)
select many targets and are what the command line accepts.

See https://bazel.build/concepts/labels for the grammar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from strata.errors import UserError

_REPO_RE = re.compile(r"^[A-Za-z0-9_.~-]*$")
_PKG_RE = re.compile(r"^[A-Za-z0-9!%\-@^_\"#$&'()*+,;<=>?\[\]{|}~./ ]*$")
_NAME_FORBIDDEN = re.compile(r"(^/|//|/$|^\.\.?$|/\.\.?/|^\.\./|/\.\.$)")
_STR = r'"((?:[^"\\]|\\.)*)"'
_LABEL_STRUCT = re.compile(
    r"struct\(_strata_label__=" + _STR + r"(?:, \w+=" + _STR.replace("(", "(?:", 1) + r")*\)"
)


def label_structs_as_text(text: str) -> str:
    """`text` with every printed Starlark label (`struct(_strata_label__="//p:n", ...)`)
    replaced by the label, as Bazel prints it.

    Labels are structs in the engine (starlark-pyo3 has no type with both a
    custom `str()` and attributes), so `"%s" % ctx.label` formats a struct.
    Strings that reach the engine (action command lines, contents, progress
    messages, `fail()` text) pass through here to read as they do under Bazel.
    """
    if "struct(_strata_label__=" not in text:
        return text
    return _LABEL_STRUCT.sub(lambda m: re.sub(r"\\(.)", r"\1", m.group(1)), text)


@dataclass(frozen=True, order=True, slots=True)
class Label:
    """A canonical label; `repo` is "" for the main repository."""

    repo: str
    package: str
    name: str
    _text: str = field(init=False, repr=False, compare=False)
    """`str(label)`, made once: a closure's BUILD file names tens of thousands of files."""

    def __post_init__(self) -> None:
        prefix = f"@{self.repo}" if self.repo else ""
        object.__setattr__(self, "_text", f"{prefix}//{self.package}:{self.name}")

    def __str__(self) -> str:
        return self._text

    def sibling(self, name: str) -> Label:
        return Label(self.repo, self.package, name)

    @staticmethod
    def parse(text: str, *, repo: str = "", package: str = "", where: str = "") -> Label:
        """Parse `text` written in package `package` of repository `repo`."""
        if not isinstance(text, str) or not text:
            raise UserError(
                f"invalid label (got {text!r}); write //package:name or :name",
                where=where or None,
            )
        rest = text
        lab_repo = repo
        if rest.startswith("@"):
            head, sep, tail = rest[1:].partition("//")
            # `@repo` alone means `@repo//:repo`.
            rest = "//" + tail if sep else "//:" + head
            if not _REPO_RE.match(head):
                raise UserError(
                    f"invalid repository name in label (got {text!r}); "
                    "use letters, digits, '-', '_' and '.'",
                    where=where or None,
                )
            lab_repo = head
        if rest.startswith("//"):
            body = rest[2:]
            pkg, colon, name = body.partition(":")
            if not colon:
                name = pkg.rsplit("/", 1)[-1]
            if not name:
                raise UserError(
                    f"invalid label (got {text!r}); a label names a target after ':'",
                    where=where or None,
                )
        else:
            if rest.startswith("@") or rest.startswith("/"):
                raise UserError(
                    f"invalid label (got {text!r}); write //package:name or :name",
                    where=where or None,
                )
            pkg = package
            name = rest[1:] if rest.startswith(":") else rest
        if lab_repo == "__main__":
            lab_repo = ""
        _check_package(pkg, text, where)
        _check_name(name, text, where)
        return Label(lab_repo, pkg, name)


def _check_package(pkg: str, text: str, where: str) -> None:
    if pkg.startswith("/") or pkg.endswith("/") or "//" in pkg or not _PKG_RE.match(pkg):
        raise UserError(
            f"invalid package name in label (got {text!r}); "
            "packages are '/'-separated directory names",
            where=where or None,
        )
    if any(part in (".", "..") for part in pkg.split("/")):
        raise UserError(
            f"invalid package name in label (got {text!r}); '.' and '..' are not allowed",
            where=where or None,
        )


def _check_name(name: str, text: str, where: str) -> None:
    if ":" in name:
        # Bazel: "invalid target name 'a:b': target names may not contain ':'".
        raise UserError(
            f"invalid target name '{name}' in label (got {text!r}); "
            "target names may not contain ':'",
            where=where or None,
        )
    if not name or _NAME_FORBIDDEN.search(name) or "\n" in name:
        raise UserError(
            f"invalid target name in label (got {text!r}); "
            "names are relative paths without '.' or '..' segments",
            where=where or None,
        )


@dataclass(frozen=True)
class TargetPattern:
    """`//pkg:name`, `//pkg:all` / `//pkg:*`, or `//pkg/...` (recursive)."""

    repo: str
    package: str
    name: str | None
    """None selects every target of the package(s)."""
    recursive: bool = False

    def __str__(self) -> str:
        prefix = f"@{self.repo}" if self.repo else ""
        if self.recursive:
            base = f"//{self.package}/..." if self.package else "//..."
            return prefix + base + (f":{self.name}" if self.name else "")
        return f"{prefix}//{self.package}:{self.name or 'all'}"

    @staticmethod
    def parse(text: str, *, cwd_package: str = "") -> TargetPattern:
        """Parse a command-line pattern; a relative one is relative to `cwd_package`."""
        repo = ""
        body = text
        if body.startswith("@"):
            head, sep, tail = body[1:].partition("//")
            if not sep:
                raise UserError(
                    f"invalid target pattern (got {text!r}); write @repo//package:name",
                    where=text,
                )
            repo, body = head, "//" + tail
        if not body.startswith("//"):
            rel = body.lstrip(":") if body.startswith(":") else body
            if body.startswith(":"):
                body = f"//{cwd_package}:{rel}"
            else:
                joined = f"{cwd_package}/{rel}" if cwd_package and rel else (cwd_package or rel)
                body = "//" + joined
        inner = body[2:]
        pkg, colon, name = inner.partition(":")
        if pkg == "..." or pkg.endswith("/..."):
            base = pkg[: -len("...")].rstrip("/")
            sel = None if not colon or name in ("all", "*", "all-targets") else name
            return TargetPattern(repo, base, sel, recursive=True)
        if colon and name in ("all", "*", "all-targets"):
            return TargetPattern(repo, pkg, None)
        label = Label.parse(f"@{repo}//{inner}" if repo else f"//{inner}", where=text)
        return TargetPattern(label.repo, label.package, label.name)
