# Shared by tools/strata and tools/test: make a virtual environment from the
# hash-pinned lock files, once, and again only when a lock file changes.
# shellcheck shell=bash

strata_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

strata_python() {
    local py
    for py in "${STRATA_PYTHON:-}" python3.11 python3; do
        [ -n "$py" ] || continue
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$py"
            return 0
        fi
    done
    echo "error: strata needs Python 3.11 or newer on PATH (or set STRATA_PYTHON); install python3" >&2
    return 1
}

# ensure_venv DIR LOCKFILE... : DIR holds a venv with exactly the locked packages.
ensure_venv() {
    local dir="$1"
    shift
    local py stamp want version_of
    py="$(strata_python)"
    # A venv whose own interpreter still runs is judged by that interpreter, not by the
    # first python3.11 on this PATH: callers with another PATH (pyenv's Python, Debian's)
    # would otherwise make it anew each time they alternate.
    version_of="$py"
    if "$dir/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        version_of="$dir/bin/python"
    fi
    want="$(cd "$strata_root" && cat "$@" | sha256sum | cut -c1-64) $("$version_of" -c 'import sys; print(sys.version.split()[0])')"
    stamp="$dir/.strata-stamp"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    mkdir -p "$(dirname "$dir")"
    (
        flock 9
        if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
            exit 0
        fi
        echo "strata: preparing $dir (first run or lock file changed)" >&2
        rm -rf "$dir"
        if ! "$py" -m venv "$dir" >/dev/null 2>&1; then
            rm -rf "$dir"
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                apt_install python3-venv
                "$py" -m venv "$dir"
            else
                echo "error: '$py -m venv' failed; install the python3-venv package" >&2
                exit 1
            fi
        fi
        local args=()
        for lock in "$@"; do args+=(-r "$strata_root/$lock"); done
        # pip's notes about this machine's index settings are noise when it works.
        local log="$dir.pip.log"
        if ! "$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
            --require-hashes --no-deps "${args[@]}" >"$log" 2>&1; then
            cat "$log" >&2
            echo "error: pip install --require-hashes of $* failed (output above); fix the package index configuration (pip config list) or the lock file" >&2
            rm -f "$log"
            exit 1
        fi
        rm -f "$log"
        echo "$want" >"$stamp"
    ) 9>"$dir.lock"
}

# apt_install PKG... : install the Debian packages not yet installed (root only).
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$pkg")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    if [ "$(id -u)" != 0 ]; then
        echo "strata: not root, so not installing: ${missing[*]} (tests that need them will skip)" >&2
        return 0
    fi
    echo "strata: installing Debian packages: ${missing[*]}" >&2
    if [ -z "${STRATA_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        export STRATA_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
