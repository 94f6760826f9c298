"""dockerTools' small helpers as store paths: fakeNss, binSh, usrBinEnv, cacert, shadowSetup.

Each helper is a store path (`StorePathInfo`), so it goes in `contents`
(layered_image: linked at /) or `copy_to_root` (docker_image: copied to /)
like any other, and its layer is cached and shared like any other.

`helper_store_path` is the rule underneath: files given inline, directories,
plain symlinks, and symlinks into another store path whose hash is known only
after it is built (the `LinkedStorePath` action resolves those).
`host_ca_certificates` is a repository rule copying the host's CA bundle
(Debian's ca-certificates) into an external repository, so builds read it as
a declared input.
"""

load("//rules:providers.bzl", "StorePathInfo")
load(":common.bzl", "TOOL_ATTRS", "check_dest", "check_one_place", "check_symlink_targets", "label_fail", "store_path_name")
load(":store_path.bzl", "build_store_path")

# nixpkgs pkgs/build-support/docker/default.nix, fakeNss.
FAKE_PASSWD = "root:x:0:0:root user:/var/empty:/bin/sh\nnobody:x:65534:65534:nobody:/var/empty:/bin/sh\n"
FAKE_GROUP = "root:x:0:\nnobody:x:65534:\n"
FAKE_NSSWITCH = "hosts: files dns\n"

# nixpkgs shadowSetup: what it writes when the files are missing.
SHADOW_PASSWD = "root:x:0:0::/root:/bin/sh\n"
SHADOW_SHADOW = "root:!x:::::::\n"
SHADOW_GROUP = "root:x:0:\n"
SHADOW_GSHADOW = "root:x::\n"
SHADOW_PAM_OTHER = """account sufficient pam_unix.so
auth sufficient pam_rootok.so
password requisite pam_unix.so nullok yescrypt
session required pam_unix.so
"""

# The attribute each kind of content entry comes from (entries without a type are srcs).
_HELPER_ATTR = {"dir": "dirs", "file": "files", "symlink": "symlinks"}

def _helper_store_path_impl(ctx):
    name = store_path_name(ctx)
    contents = []
    inputs = []
    for dest in sorted(ctx.attr.files.keys()):
        check_dest(ctx, "files", dest)
        contents.append({"content": ctx.attr.files[dest], "dest": dest, "type": "file"})
    for target, dest in ctx.attr.srcs.items():
        check_dest(ctx, "srcs", dest)
        fs = target[DefaultInfo].files.to_list()
        if len(fs) != 1:
            label_fail(ctx, "srcs", "each source must be one file", len(fs), "point at a single file")
        contents.append({"dest": dest, "mode": "0644", "src": fs[0].path})
        inputs.extend(fs)
    for dest in ctx.attr.dirs:
        check_dest(ctx, "dirs", dest)
        contents.append({"dest": dest, "type": "dir"})
    check_symlink_targets(ctx, "symlinks", ctx.attr.symlinks)
    for dest in sorted(ctx.attr.symlinks.keys()):
        check_dest(ctx, "symlinks", dest)
        contents.append({"dest": dest, "target": ctx.attr.symlinks[dest], "type": "symlink"})
    refs = [d[StorePathInfo] for d in ctx.attr.deps]
    links = []
    if ctx.attr.links:
        if not ctx.attr.link_to:
            label_fail(ctx, "link_to", "links need a store path to point into", "None", "set link_to to a store_path target")
        target = ctx.attr.link_to[StorePathInfo]
        if target.store_dir != ctx.attr.store_dir:
            label_fail(ctx, "link_to", "the target lives in another store directory", target.store_dir, "build it for " + ctx.attr.store_dir)
        refs.append(target)
        for dest in sorted(ctx.attr.links.keys()):
            check_dest(ctx, "links", dest)
            links.append({"dest": dest, "info": target.info.path, "subpath": ctx.attr.links[dest]})
    elif ctx.attr.link_to:
        label_fail(ctx, "links", "link_to is set but nothing links into it", "{}", "map a destination to a path inside link_to, e.g. {\"bin/sh\": \"bin/bash\"}")
    if not contents and not links:
        label_fail(ctx, "files", "a store path needs content", "nothing", "give files, srcs, dirs, symlinks or links")
    placed = [(_HELPER_ATTR.get(c.get("type"), "srcs"), c["dest"]) for c in contents]
    check_one_place(ctx, placed + [("links", l["dest"]) for l in links])
    return build_store_path(ctx, name, contents, inputs, refs, links)

helper_store_path = rule(
    implementation = _helper_store_path_impl,
    doc = """A small store path written from the BUILD file: inline files, directories, links.

The rule under `fake_nss`, `bin_sh`, `usr_bin_env`, `ca_certificates` and
`shadow_setup`; use it for your own `/etc` snippets.

```starlark
load("@strata//rules:defs.bzl", "helper_store_path")
helper_store_path(
    name = "motd",
    files = {"etc/motd": "welcome\\n"},
    links = {"bin/sh": "bin/busybox"},   # /nix/store/<hash>-motd/bin/sh -> <busybox>/bin/busybox
    link_to = ":busybox",
)
```""",
    attrs = dict(TOOL_ATTRS, **{
        "files": attr.string_dict(doc = "Destination inside the store path → file content (text, mode 0644)."),
        "srcs": attr.label_keyed_string_dict(allow_files = True, doc = "One-file targets → destination inside the store path (mode 0644)."),
        "dirs": attr.string_list(doc = "Empty directories to create, e.g. [\"var/empty\"]."),
        "symlinks": attr.string_dict(doc = "Destination → symlink target, written as given; a relative target must stay inside the store path."),
        "links": attr.string_dict(doc = "Destination → path inside `link_to`; the symlink points at `<link_to's store path>/<path>` (\"\" for the store path itself)."),
        "link_to": attr.label(providers = [StorePathInfo], doc = "The store path `links` point into; it becomes a reference."),
        "deps": attr.label_list(providers = [StorePathInfo], doc = "Other references (their names must appear in the content)."),
        "path_name": attr.string(doc = "The name after `<hash>-`; default: the target name."),
        "store_dir": attr.string(default = "/nix/store", doc = "The store directory; part of the hash, so the same content gets another name elsewhere."),
    }),
)

def fake_nss(name, **kwargs):
    """dockerTools.fakeNss: /etc/passwd and /etc/group with root and nobody, /etc/nsswitch.conf, /var/empty.

    Programs that look up users (nginx, busybox httpd -u nobody, `id`) need these.

    ```starlark
    fake_nss(name = "fake-nss")
    layered_image(name = "web", contents = [":busybox", ":fake-nss"], config = {"User": "nobody"})
    ```
    """
    helper_store_path(
        name = name,
        files = {"etc/group": FAKE_GROUP, "etc/nsswitch.conf": FAKE_NSSWITCH, "etc/passwd": FAKE_PASSWD},
        dirs = ["var/empty"],
        **kwargs
    )

def bin_sh(name, shell, path = "bin/sh", **kwargs):
    """dockerTools.binSh: a store path with `bin/sh` linking to `path` inside the `shell` store path.

    ```starlark
    bin_sh(name = "bin-sh", shell = ":busybox", path = "bin/busybox")
    ```

    Args:
      shell (label): The store path holding the shell (becomes a reference).
      path (string): The shell's path inside `shell`.
    """
    helper_store_path(name = name, links = {"bin/sh": path}, link_to = shell, **kwargs)

def usr_bin_env(name, coreutils, path = "bin/env", **kwargs):
    """dockerTools.usrBinEnv: `usr/bin/env` linking to `path` inside the `coreutils` store path.

    For `#!/usr/bin/env` scripts. Busybox works too: `path = "bin/busybox"`
    runs its `env` applet, since the link is named `env`.

    ```starlark
    usr_bin_env(name = "usr-bin-env", coreutils = ":busybox", path = "bin/busybox")
    ```

    Args:
      coreutils (label): The store path holding `env` (becomes a reference).
      path (string): The `env` program's path inside `coreutils`.
    """
    helper_store_path(name = name, links = {"usr/bin/env": path}, link_to = coreutils, **kwargs)

def ca_certificates(name, bundle = "@host_ca_certificates//:ca-certificates.crt", **kwargs):
    """nixpkgs' cacert: /etc/ssl/certs/ca-certificates.crt (and ca-bundle.crt) from a PEM bundle.

    `bundle` is any one-file target; by default the host's Debian bundle copied by
    the `host_ca_certificates` repository rule (call it in WORKSPACE).

    ```starlark
    # WORKSPACE: load("@strata//rules:defs.bzl", "host_ca_certificates"); host_ca_certificates()
    ca_certificates(name = "cacert")
    ```

    Args:
      bundle (label): A one-file target: the PEM bundle of trusted CAs.
    """
    helper_store_path(
        name = name,
        srcs = {bundle: "etc/ssl/certs/ca-certificates.crt"},
        symlinks = {"etc/ssl/certs/ca-bundle.crt": "ca-certificates.crt"},
        **kwargs
    )

def shadow_setup(name, **kwargs):
    """dockerTools.shadowSetup: the files shadow's useradd/groupadd need, with only root.

    /etc/passwd, /etc/shadow, /etc/group, /etc/gshadow, /etc/pam.d/other and
    an empty /etc/login.defs. Put it in `copy_to_root` (real files that
    `useradd` can rewrite), typically under a `run_as_root` script.
    """
    helper_store_path(
        name = name,
        files = {
            "etc/group": SHADOW_GROUP,
            "etc/gshadow": SHADOW_GSHADOW,
            "etc/login.defs": "",
            "etc/pam.d/other": SHADOW_PAM_OTHER,
            "etc/passwd": SHADOW_PASSWD,
            "etc/shadow": SHADOW_SHADOW,
        },
        **kwargs
    )

_CA_BUILD = """# Generated by host_ca_certificates (@strata//rules/private:helpers.bzl). Do not edit.
exports_files(["ca-certificates.crt"], visibility = ["//visibility:public"])
"""

def _host_ca_certificates_impl(rctx):
    path = rctx.path(rctx.attr.path)
    if not path.exists:
        fail("@%s: attribute 'path': no CA bundle on this host (got %s); install Debian's ca-certificates or pass a bundle by label to ca_certificates(bundle = ...)" % (rctx.name, rctx.attr.path))
    rctx.file("ca-certificates.crt", rctx.read(path), executable = False)
    rctx.file("BUILD", _CA_BUILD, executable = False)
    rctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % rctx.name, executable = False)

host_ca_certificates_rule = repository_rule(
    implementation = _host_ca_certificates_impl,
    doc = """Copies the host's CA bundle into `@<name>//:ca-certificates.crt`.

The copy is the hermetic boundary: builds read the repository's file, a
declared input. Re-fetched when the attributes change (`bazel sync`).

```starlark
load("@strata//rules:defs.bzl", "host_ca_certificates_rule")
host_ca_certificates_rule(name = "host_ca_certificates")   # @host_ca_certificates//:ca-certificates.crt
```""",
    attrs = {
        "path": attr.string(default = "/etc/ssl/certs/ca-certificates.crt", doc = "The host's PEM bundle (Debian: ca-certificates)."),
    },
    local = True,
)

def host_ca_certificates(name = "host_ca_certificates", **kwargs):
    """WORKSPACE macro: `@host_ca_certificates//:ca-certificates.crt`, the default bundle of ca_certificates."""
    host_ca_certificates_rule(name = name, **kwargs)
