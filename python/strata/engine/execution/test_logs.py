"""test.log and test.xml as Bazel 4.2.3 writes them, and the statuses a test ends with."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

LOG_RULE = "-" * 77

PASSED, FAILED, TIMEOUT = "PASSED", "FAILED", "TIMEOUT"
FAILED_TO_BUILD, NO_STATUS = "FAILED TO BUILD", "NO STATUS"


def log_header(label: str) -> str:
    """The three lines Bazel's test.log starts with (the first lets `sh test.log` page it)."""
    return (
        f'exec ${{PAGER:-/usr/bin/less}} "$0" || exit 1\nExecuting tests from {label}\n{LOG_RULE}\n'
    )


def generated_xml(name: str, log: bytes, seconds: float, status: str, code: int) -> bytes:
    """test.xml for a test that wrote none, shaped as Bazel's generate-xml.sh makes it."""
    text = log.decode("utf-8", errors="replace").replace("]]>", "]]>]]&gt;<![CDATA[")
    secs = int(seconds)
    failed = status != PASSED
    error = ""
    if status == TIMEOUT:
        error = '<error message="timed out"></error>'
    elif failed:
        error = f'<error message="exited with error code {code}"></error>'
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<testsuites>\n"
        f'  <testsuite name={quoteattr(name)} tests="1" failures="0" errors="{int(failed)}">\n'
        f'    <testcase name={quoteattr(name)} status="run" duration="{secs}" '
        f'time="{secs}">{error}</testcase>\n'
        "      <system-out>\n"
        "Generated test.log (if the file is not UTF-8, then this may be unreadable):\n"
        f"<![CDATA[{text}]]>\n"
        "      </system-out>\n"
        "    </testsuite>\n"
        "</testsuites>\n"
    ).encode()


def log_body(log: bytes) -> str:
    """The test's own output: its log after the three header lines."""
    text = log.decode("utf-8", errors="replace")
    head, sep, rest = text.partition(LOG_RULE + "\n")
    return rest if sep else text
