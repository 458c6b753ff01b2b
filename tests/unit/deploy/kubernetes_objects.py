"""The rendered Kubernetes objects of each variant, and ways to read them, for the tests."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import yaml

from deploy.kubernetes.render import render
from tests.support.servers import ROOT

K8S = ROOT / "deploy" / "kubernetes"
VARIANTS = {
    "default": K8S / "base",
    "external-redis": K8S / "overlays" / "external-redis",
    "redis-cluster": K8S / "overlays" / "redis-cluster",
    "vllm": K8S / "overlays" / "vllm",
}
Object = dict[str, Any]


@functools.cache
def _rendered(variant: str) -> str:
    return yaml.safe_dump_all(render(VARIANTS[variant]))


def objects(variant: str) -> list[Object]:
    """A fresh copy of the variant's objects (tests that break them get their own)."""
    return list(yaml.safe_load_all(_rendered(variant)))


def of_kind(objs: list[Object], kind: str) -> list[Object]:
    return [o for o in objs if o["kind"] == kind]


def named(objs: list[Object], kind: str, name: str) -> Object:
    [found] = [o for o in of_kind(objs, kind) if o["metadata"]["name"] == name]
    return found


def workloads(objs: list[Object]) -> list[Object]:
    return [o for o in objs if o["kind"] in ("Deployment", "StatefulSet")]


def pod_spec(workload: Object) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Object) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def containers(objs: list[Object]) -> Iterator[tuple[Object, dict[str, Any]]]:
    for workload in workloads(objs):
        for container in pod_spec(workload)["containers"]:
            yield workload, container


def container_of(objs: list[Object], name: str) -> dict[str, Any]:
    [found] = [c for w, c in containers(objs) if w["metadata"]["name"] == name]
    return found


def port_number(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, by name or number, as one of the container's ports."""
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    number = ports[port] if isinstance(port, str) else port
    assert number in ports.values(), f"{container['name']} does not listen on {port}"
    return int(number)


def env_value(objs: list[Object], workload: str, name: str) -> str:
    """An environment variable as the container gets it: env first, then its ConfigMaps."""
    container = container_of(objs, workload)
    for entry in container.get("env", []):
        if entry["name"] == name:
            value: str = entry["value"]
            return value
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            data = named(objs, "ConfigMap", source["configMapRef"]["name"])["data"]
            if name in data:
                value = data[name]
                return value
    raise KeyError(f"{workload} has no {name}")


def plain_env(objs: list[Object], workload: str) -> dict[str, str]:
    """The variables a container gets from its ConfigMaps and literal values (the ones from
    Secrets left out), with `env` over `envFrom` as the kubelet does."""
    container = container_of(objs, workload)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= named(objs, "ConfigMap", source["configMapRef"]["name"])["data"]
    env |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return env
