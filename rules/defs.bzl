"""strata's BUILD-file API: load every rule, macro and provider from here (WORKSPACE's
repository rules are in `repositories.bzl`).

```starlark
load("@strata//rules:defs.bzl", "store_path", "layered_image", "image_load")
```

The image rules take `config` as a dict (as dockerTools does); the macros
below encode it to JSON for the underlying rule (`*_rule`, for power users).
"""

load("//rules:providers.bzl", _ImageInfo = "ImageInfo", _LayerInfo = "LayerInfo", _StorePathInfo = "StorePathInfo")
load("//rules/private:export.bzl", _export_image = "export_image")
load("//rules/private:helpers.bzl", _bin_sh = "bin_sh", _ca_certificates = "ca_certificates", _fake_nss = "fake_nss", _helper_store_path = "helper_store_path", _shadow_setup = "shadow_setup", _usr_bin_env = "usr_bin_env")
load("//rules/private:image.bzl", _docker_image_rule = "docker_image_rule", _layered_image_rule = "layered_image_rule", _stream_layered_image_rule = "stream_layered_image_rule")
load("//rules/private:image_test.bzl", _image_test = "image_test")
load("//rules/private:index.bzl", _image_index = "image_index")
load("//rules/private:load.bzl", _image_load = "image_load")
load("//rules/private:merge.bzl", _merge_images = "merge_images")
load("//rules/private:nix.bzl", _nix_db = "nix_db")
load("//rules/private:registry.bzl", _image_push = "image_push", _image_push_rule = "image_push_rule")
load("//rules/private:run_as_root.bzl", _run_as_root_rule = "run_as_root")
load("//rules/private:store_path.bzl", _store_path = "store_path")

def _encode(value):
    return json.encode(value) if type(value) != "string" else value

# The order here is the order of the rules reference (docs/rules.md, tools/gen-docs).

store_path = _store_path
helper_store_path = _helper_store_path

def docker_image(name, config = None, **kwargs):
    """buildImage, with `config` as a dict.

    Args:
      config (dict): The image config: `Cmd`, `Entrypoint`, `Env`, `WorkingDir`, `User`,
        `ExposedPorts`, `Volumes`, `Labels`, ... as in Docker's image config
        (e.g. `{"Cmd": ["/bin/hello"], "Env": ["LANG=C.UTF-8"]}`); `Env` is merged with the
        base image's, last wins. A JSON string is taken as it is.
    """
    _docker_image_rule(name = name, config = _encode(config) if config != None else "", **kwargs)

def layered_image(name, config = None, layering = None, **kwargs):
    """buildLayeredImage, with `config` as a dict and `layering` as a name or a list.

    Args:
      config (dict): The image config: `Cmd`, `Entrypoint`, `Env`, `WorkingDir`, `User`,
        `ExposedPorts`, `Volumes`, `Labels`, ... as in Docker's image config
        (e.g. `{"Cmd": ["/bin/hello"], "Env": ["LANG=C.UTF-8"]}`); `Env` is merged with the
        base image's, last wins. A JSON string is taken as it is.
      layering (string or list): How store paths are grouped into layers: `"popularity"`
        (default, as dockerTools), `"auto_layer"`, or a pipeline, a list of steps such as
        `[["popularity_contest"], ["limit_layers", 50]]`.
    """
    _layered_image_rule(
        name = name,
        config = _encode(config) if config != None else "",
        layering = _encode(layering) if layering != None else "",
        **kwargs
    )

def stream_layered_image(name, config = None, layering = None, **kwargs):
    """streamLayeredImage, with `config` as a dict and `layering` as a name or a list.

    Args:
      config (dict): The image config, as for `layered_image`.
      layering (string or list): Store path grouping, as for `layered_image`.
    """
    _stream_layered_image_rule(
        name = name,
        config = _encode(config) if config != None else "",
        layering = _encode(layering) if layering != None else "",
        **kwargs
    )

def run_as_root(name, config = None, **kwargs):
    """runAsRoot on top of `from_image`, with `config` as a dict.

    Args:
      config (dict): Config changes merged over the parent's (`Env` last wins), e.g.
        `{"User": "app"}`. A JSON string is taken as it is.
    """
    _run_as_root_rule(name = name, config = _encode(config) if config != None else "", **kwargs)

merge_images = _merge_images
export_image = _export_image
image_index = _image_index
image_load = _image_load
image_push = _image_push
image_test = _image_test
nix_db = _nix_db
fake_nss = _fake_nss
bin_sh = _bin_sh
usr_bin_env = _usr_bin_env
ca_certificates = _ca_certificates
shadow_setup = _shadow_setup

# Raw rules, for power users: `config` as a JSON string.
docker_image_rule = _docker_image_rule
layered_image_rule = _layered_image_rule
stream_layered_image_rule = _stream_layered_image_rule
run_as_root_rule = _run_as_root_rule
image_push_rule = _image_push_rule

StorePathInfo = _StorePathInfo
LayerInfo = _LayerInfo
ImageInfo = _ImageInfo
