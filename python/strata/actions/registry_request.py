"""Keys of the registry actions' requests (ImagePull, ImagePush) and `strata pull-digest`.

registry      host[:port], optionally with http:// or https://
tls_verify    default true; ca_file: a PEM file of CAs to trust
timeout       seconds the whole transfer may take (default: no bound)
os, architecture, variant   a platform (default linux/x86_64)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from strata.actions.request import field
from strata.errors import UserError
from strata.oci.platform import Platform, parse_platform
from strata.oci.reference import check_repository
from strata.registry.client import RegistryClient
from strata.registry.endpoint import Options, Registry

ENDPOINT_KEYS = ("ca_file", "registry", "timeout", "tls_verify")


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A registry and how to talk to it: the keys `ENDPOINT_KEYS`, read."""

    registry: Registry
    options: Options

    def client(self, where: str) -> RegistryClient:
        return RegistryClient(self.registry, self.options, where=where)


def repository_from(req: dict[str, Any], where: str) -> str:
    """`repository`, checked: names go into registry URLs (the image_push rule's grammar)."""
    return check_repository(field(req, "repository", str, where), where)


def endpoint_from(req: dict[str, Any], where: str) -> Endpoint:
    registry = Registry.parse(field(req, "registry", str, where), where=where)
    timeout = field(req, "timeout", int, where, 0)
    if timeout < 0:
        raise UserError(f"timeout must be positive seconds (got {timeout})", where=where)
    options = Options(
        tls_verify=field(req, "tls_verify", bool, where, True),
        ca_file=field(req, "ca_file", str, where, ""),
        deadline=float(timeout) if timeout else None,
    )
    return Endpoint(registry, options)


PLATFORM_KEYS = ("architecture", "os", "variant")


def platform_from(req: dict[str, Any], where: str) -> Platform:
    platform = parse_platform(
        field(req, "architecture", str, where, "x86_64"),
        field(req, "os", str, where, "linux"),
        where=where,
    )
    variant = field(req, "variant", str, where, "")
    return dataclasses.replace(platform, variant=variant) if variant else platform
