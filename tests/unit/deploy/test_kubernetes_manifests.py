"""The Kubernetes manifests under deploy/kubernetes/, every variant, checked without a cluster.

Each variant (the base and each overlay) is rendered by deploy/kubernetes/render.py; every
object is validated against the Kubernetes API schemas that the kubernetes-validate package
ships (strict: an unknown field is an error), then the rendered objects are read for what a
schema cannot say: probes on the services' real health routes, resources, locked-down
security contexts, who may connect to whom, where secrets go, how the pieces find each other,
and agreement with the Dockerfiles, docker-compose.yml, nginx's config and .env.example.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from assistant.app import create_app as create_assistant
from conversation.app import create_app as create_conversation
from tests.support.nginx import render_module
from tests.support.servers import ROOT
from tests.unit.deploy.kubernetes_objects import (
    K8S,
    VARIANTS,
    Object,
    container_of,
    containers,
    env_value,
    named,
    objects,
    of_kind,
    pod_labels,
    pod_spec,
    port_number,
    workloads,
)

# The newest API schemas kubernetes-validate ships (a current Kubernetes release).
KUBERNETES_VERSION = "1.37.0"
OUR_IMAGES = {"nginx", "conversation", "assistant"}
# Third-party images whose writes cannot all be pointed at volumes (see vllm.yaml).
WRITABLE_ROOT = {"vllm"}
MODEL_KEYS_SECRET = "chatstack-model-keys"
REDIS_SECRET = "chatstack-redis"
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")
# The scrape peer in network-policies.yaml: Prometheus in the namespace `monitoring`.
SCRAPER = "monitoring/prometheus"
# Who may open a connection to each workload, by the workload's name; ANYWHERE: any source.
ANYWHERE = "anywhere"
ALLOWED_SOURCES = {
    "nginx": {ANYWHERE},
    "conversation": {"nginx", SCRAPER},
    "assistant": {"conversation", SCRAPER},
    "redis": {"conversation", "assistant"},
    "vllm": {"assistant"},
}
# Settings the manifests set that .env.example does not list as a variable of ours:
# WEB_CONCURRENCY is gunicorn's own (the images' process count).
SETTINGS_BEING_ADDED = {"WEB_CONCURRENCY"}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector (`matchLabels`; `{}` selects everything) against a pod's labels."""
    assert set(selector) <= {"matchLabels"}, f"only matchLabels is read here: {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def service_selects(service: Object, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in service["spec"]["selector"].items())


def quantity(value: str | int) -> float:
    """A CPU or memory quantity in base units, for the suffixes the manifests use."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def variant_ids() -> list[str]:
    return list(VARIANTS)


# --- rendering and the API schemas ------------------------------------------------------------


def test_every_overlay_is_a_tested_variant() -> None:
    overlays = {p.name for p in (K8S / "overlays").iterdir() if p.is_dir()}
    assert overlays == set(VARIANTS) - {"default"}


def schema_errors(objs: list[Object]) -> list[str]:
    errors = []
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {e.message}")
    return errors


@pytest.mark.parametrize("variant", variant_ids())
def test_every_object_matches_the_kubernetes_api_schema(variant: str) -> None:
    objs = objects(variant)
    assert len(objs) >= 15
    assert schema_errors(objs) == []


def test_the_schema_check_can_fail() -> None:
    objs = objects("default")
    nginx = container_of(objs, "nginx")
    nginx["readinesProbe"] = nginx.pop("readinessProbe")
    named(objs, "HorizontalPodAutoscaler", "conversation")["spec"]["minReplicas"] = "two"
    objs.append({"apiVersion": "v1", "kind": "Gadget", "metadata": {"name": "x"}})
    errors = schema_errors(objs)
    assert any(e.startswith("Deployment/nginx") and "readinesProbe" in e for e in errors), errors
    assert any(e.startswith("HorizontalPodAutoscaler/conversation") for e in errors), errors
    assert any(e.startswith("Gadget/x") for e in errors), errors


# --- every container -----------------------------------------------------------------------


def container_problems(objs: list[Object]) -> list[str]:
    """What each container lacks of: probes, requests and limits, a locked-down context."""
    problems = []
    for workload, container in containers(objs):
        name = workload["metadata"]["name"]
        pod, own = pod_spec(workload), container.get("securityContext", {})
        effective = {**pod.get("securityContext", {}), **own}
        resources = container.get("resources", {})
        checks = {
            "a liveness probe": "livenessProbe" in container,
            "a readiness probe": "readinessProbe" in container,
            "requests within limits": all(
                quantity(resources.get("requests", {}).get(kind, "inf"))
                <= quantity(resources.get("limits", {}).get(kind, "0"))
                for kind in ("cpu", "memory")
            ),
            "runAsNonRoot": effective.get("runAsNonRoot") is True,
            # A numeric uid: the kubelet cannot check a user given by name in the image.
            "a numeric non-root runAsUser": isinstance(effective.get("runAsUser"), int)
            and effective["runAsUser"] > 0,
            "seccomp RuntimeDefault": effective.get("seccompProfile") == {"type": "RuntimeDefault"},
            "no privilege escalation": own.get("allowPrivilegeEscalation") is False,
            "not privileged": own.get("privileged", False) is False,
            "every capability dropped": own.get("capabilities") == {"drop": ["ALL"]},
            "a read-only root filesystem": own.get("readOnlyRootFilesystem") is True
            or name in WRITABLE_ROOT,
            "no service account token": pod.get("automountServiceAccountToken") is False,
            "no host namespaces": not (pod.get("hostNetwork") or pod.get("hostPID")),
        }
        problems += [f"{name} lacks {what}" for what, ok in checks.items() if not ok]
    return problems


@pytest.mark.parametrize("variant", variant_ids())
def test_every_container_has_probes_resources_and_runs_locked_down(variant: str) -> None:
    assert container_problems(objects(variant)) == []


def test_the_container_check_can_fail() -> None:
    objs = objects("default")
    conversation = container_of(objs, "conversation")
    del conversation["readinessProbe"]
    conversation["resources"]["requests"]["memory"] = "2Gi"
    conversation["securityContext"]["allowPrivilegeEscalation"] = True
    conversation["securityContext"]["capabilities"] = {"drop": ["ALL"], "add": ["NET_ADMIN"]}
    pod_spec(named(objs, "Deployment", "nginx"))["securityContext"]["runAsUser"] = 0
    container_of(objs, "redis")["securityContext"]["readOnlyRootFilesystem"] = False
    assert container_problems(objs) == [
        "redis lacks a read-only root filesystem",
        "conversation lacks a readiness probe",
        "conversation lacks requests within limits",
        "conversation lacks no privilege escalation",
        "conversation lacks every capability dropped",
        "nginx lacks a numeric non-root runAsUser",
    ]


@pytest.mark.parametrize("variant", variant_ids())
def test_read_only_containers_have_a_writable_tmp(variant: str) -> None:
    objs = objects(variant)
    for name in ("conversation", "assistant"):
        mounts = {m["mountPath"] for m in container_of(objs, name)["volumeMounts"]}
        assert "/tmp" in mounts, name


# --- probes on the real routes ------------------------------------------------------------


def probe_paths(container: dict[str, Any]) -> dict[str, str]:
    return {
        kind: container[kind]["httpGet"]["path"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        if kind in container and "httpGet" in container[kind]
    }


# The conversation app's OpenAPI build warns about the tutorials' two /refresh_token routes.
@pytest.mark.filterwarnings("ignore:Duplicate Operation ID")
def test_probes_use_each_services_own_health_routes() -> None:
    objs = objects("default")
    conversation = set(create_conversation().openapi()["paths"])
    assistant = set(create_assistant().openapi()["paths"])
    assert probe_paths(container_of(objs, "conversation")) == {
        "livenessProbe": "/api/health",
        "readinessProbe": "/api/health/ready",
    }
    assert set(probe_paths(container_of(objs, "conversation")).values()) <= conversation
    # The model loads before /health/ready answers: that is the startup probe's long wait.
    assistant_probes = container_of(objs, "assistant")
    assert probe_paths(assistant_probes) == {
        "startupProbe": "/health/ready",
        "livenessProbe": "/health/live",
        "readinessProbe": "/health/ready",
    }
    assert set(probe_paths(assistant_probes).values()) <= assistant
    startup = assistant_probes["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    nginx_conf = (ROOT / "nginx" / "nginx.conf.template").read_text()
    for path in probe_paths(container_of(objs, "nginx")).values():
        assert f"location = {path} " in nginx_conf


@pytest.mark.parametrize("variant", variant_ids())
def test_probes_aim_at_ports_the_container_listens_on(variant: str) -> None:
    for _, container in containers(objects(variant)):
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container.get(kind, {})
            for action in ("httpGet", "tcpSocket"):
                if action in probe:
                    port_number(container, probe[action]["port"])


# --- scaling, disruptions, shutdown --------------------------------------------------------


@pytest.mark.parametrize("variant", variant_ids())
def test_the_autoscaler_scales_conversation_alone(variant: str) -> None:
    objs = objects(variant)
    [hpa] = of_kind(objs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "conversation")
    named(objs, "Deployment", "conversation")
    assert hpa["spec"]["minReplicas"] >= 2
    # A replica count in the Deployment would undo the autoscaler's on every apply.
    assert "replicas" not in named(objs, "Deployment", "conversation")["spec"]


@pytest.mark.parametrize("variant", variant_ids())
def test_every_deployment_of_ours_has_a_disruption_budget_that_lets_a_node_drain(
    variant: str,
) -> None:
    objs = objects(variant)
    budgets = of_kind(objs, "PodDisruptionBudget")
    for name in OUR_IMAGES:
        labels = pod_labels(named(objs, "Deployment", name))
        [budget] = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        assert budget["spec"]["maxUnavailable"] >= 1, name
    for budget in budgets:
        matching = [
            w for w in workloads(objs) if selects(budget["spec"]["selector"], pod_labels(w))
        ]
        assert len(matching) == 1, budget["metadata"]["name"]


@pytest.mark.parametrize("variant", variant_ids())
def test_replies_in_flight_finish_before_the_kubelet_kills_a_replica(variant: str) -> None:
    objs = objects(variant)
    deployment = named(objs, "Deployment", "conversation")
    grace = int(env_value(objs, "conversation", "SHUTDOWN_GRACE_PERIOD"))
    pause = container_of(objs, "conversation")["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] > pause + grace
    # Rolling updates start a new replica before stopping an old one.
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


# --- network policies ------------------------------------------------------------------------


def peer_names(objs: list[Object], peer: dict[str, Any]) -> set[str]:
    """Who a `from` peer admits: our workloads by name, others as NAMESPACE/APP ("*": any)."""
    if "namespaceSelector" in peer:
        namespace = peer["namespaceSelector"].get("matchLabels", {})
        pods = peer.get("podSelector", {}).get("matchLabels", {})
        return {
            f"{namespace.get('kubernetes.io/metadata.name', '*')}/"
            f"{pods.get('app.kubernetes.io/name', '*')}"
        }
    if "ipBlock" in peer:
        return {peer["ipBlock"]["cidr"]}
    return {
        w["metadata"]["name"]
        for w in workloads(objs)
        if selects(peer["podSelector"], pod_labels(w))
    }


def allowed_ingress(objs: list[Object], workload: Object) -> set[tuple[str, int | str]]:
    """(source, port) pairs every policy selecting the workload's pods lets in, together."""
    allowed: set[tuple[str, int | str]] = set()
    for policy in of_kind(objs, "NetworkPolicy"):
        spec = policy["spec"]
        if "Ingress" not in spec["policyTypes"] or not selects(
            spec["podSelector"], pod_labels(workload)
        ):
            continue
        for rule in spec.get("ingress", []):
            sources = (
                set().union(*(peer_names(objs, p) for p in rule["from"]))
                if "from" in rule
                else {ANYWHERE}
            )
            ports = [p["port"] for p in rule.get("ports", [])] or ["any"]
            allowed |= {(source, port) for source in sources for port in ports}
    return allowed


def expected_ingress(objs: list[Object], workload: Object) -> set[tuple[str, int | str]]:
    name = workload["metadata"]["name"]
    [container] = pod_spec(workload)["containers"]
    [port] = [p["containerPort"] for p in container["ports"]]
    return {(source, port) for source in ALLOWED_SOURCES[name]}


def policy_mismatches(objs: list[Object]) -> dict[str, set[tuple[str, int | str]]]:
    return {
        w["metadata"]["name"]: allowed_ingress(objs, w) ^ expected_ingress(objs, w)
        for w in workloads(objs)
        if allowed_ingress(objs, w) != expected_ingress(objs, w)
    }


@pytest.mark.parametrize("variant", variant_ids())
def test_ingress_is_denied_by_default(variant: str) -> None:
    deny = [
        p
        for p in of_kind(objects(variant), "NetworkPolicy")
        if p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"]
    ]
    assert len(deny) == 1
    assert "ingress" not in deny[0]["spec"]


@pytest.mark.parametrize("variant", variant_ids())
def test_each_workload_accepts_connections_only_from_its_callers(variant: str) -> None:
    objs = objects(variant)
    assert {w["metadata"]["name"] for w in workloads(objs)} <= set(ALLOWED_SOURCES)
    assert policy_mismatches(objs) == {}


def test_the_policy_check_can_fail() -> None:
    objs = objects("default")
    assistant_policy = named(objs, "NetworkPolicy", "assistant")
    assistant_policy["spec"]["ingress"][0]["from"].append(
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "nginx"}}}
    )
    del named(objs, "NetworkPolicy", "redis")["spec"]["ingress"][0]["ports"]
    named(objs, "NetworkPolicy", "conversation")["spec"]["ingress"].append(
        {"from": [{"namespaceSelector": {}}], "ports": [{"port": 8000}]}
    )
    assert policy_mismatches(objs) == {
        "conversation": {("*/*", 8000)},
        "assistant": {("nginx", 8001)},
        "redis": {
            ("conversation", "any"),
            ("assistant", "any"),
            ("conversation", 6379),
            ("assistant", 6379),
        },
    }


@pytest.mark.parametrize("variant", variant_ids())
def test_the_scraper_reaches_the_metrics_the_pods_advertise(variant: str) -> None:
    objs = objects(variant)
    for name in ("conversation", "assistant"):
        workload = named(objs, "Deployment", name)
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        port = int(annotations["prometheus.io/port"])
        assert port_number(container_of(objs, name), port) == port
        assert (SCRAPER, port) in allowed_ingress(objs, workload)


@pytest.mark.parametrize("resolver", [None, "127.0.0.11"])
def test_nginx_does_not_expose_the_metrics_path(resolver: str | None) -> None:
    conversation = ["conversation:8000"] if resolver else ["127.0.0.1:8000"]
    conf = render_module().render("8080", "/srv", conversation, "/tmp", resolver=resolver)
    # Each `location` up to the next one: the regex locations that pass on to conversation.
    blocks = conf.split("location ")[1:]
    proxied = [b.split()[1] for b in blocks if b.startswith("~ ") and "proxy_pass" in b]
    assert proxied, "expected nginx's proxied locations"
    for pattern in proxied:
        assert not re.search(pattern, "/metrics"), pattern
    assert "location /metrics" not in conf and "location = /metrics" not in conf


# --- secrets ---------------------------------------------------------------------------------


def secret_refs(pod: dict[str, Any], container: dict[str, Any]) -> set[str]:
    names = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    names |= {s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s}
    names |= {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
    return names


@pytest.mark.parametrize("variant", variant_ids())
def test_model_keys_reach_assistant_alone(variant: str) -> None:
    objs = objects(variant)
    users = {
        w["metadata"]["name"]
        for w, c in containers(objs)
        if MODEL_KEYS_SECRET in secret_refs(pod_spec(w), c)
    }
    assert users == {"assistant"}
    keys = {
        e["name"]
        for e in container_of(objs, "assistant")["env"]
        if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == MODEL_KEYS_SECRET
    }
    assert keys == {"OPENAI_API_KEY", "HF_TOKEN"}


@pytest.mark.parametrize("variant", variant_ids())
def test_no_secret_is_written_in_plain_text(variant: str) -> None:
    objs = objects(variant)
    assert of_kind(objs, "Secret") == []
    for config in of_kind(objs, "ConfigMap"):
        assert not [k for k in config["data"] if SECRET_NAME.search(k)], config["metadata"]
    for workload, container in containers(objs):
        literal = [
            e["name"]
            for e in container.get("env", [])
            if "value" in e and SECRET_NAME.search(e["name"])
        ]
        assert literal == [], workload["metadata"]["name"]


@pytest.mark.parametrize("variant", ["external-redis", "redis-cluster"])
def test_an_external_redis_url_comes_from_its_secret(variant: str) -> None:
    objs = objects(variant)
    assert "REDIS_URL" not in named(objs, "ConfigMap", "conversation")["data"]
    [entry] = [e for e in container_of(objs, "conversation")["env"] if e["name"] == "REDIS_URL"]
    assert entry["valueFrom"]["secretKeyRef"] == {"name": REDIS_SECRET, "key": "REDIS_URL"}
    users = {
        w["metadata"]["name"]
        for w, c in containers(objs)
        if REDIS_SECRET in secret_refs(pod_spec(w), c)
    }
    assert users == {"conversation"}
    assert of_kind(objs, "StatefulSet") == []
    assert [s for s in of_kind(objs, "Service") if s["metadata"]["name"].startswith("redis")] == []


def test_the_redis_cluster_variant_turns_the_cluster_client_on() -> None:
    assert env_value(objects("redis-cluster"), "conversation", "REDIS_CLUSTER") == "true"
    with pytest.raises(KeyError):
        env_value(objects("external-redis"), "conversation", "REDIS_CLUSTER")


# --- how the pieces find each other -------------------------------------------------------


def service_endpoint(objs: list[Object], host: str, port: int) -> tuple[str, int]:
    """The workload and container port behind Service `host`:`port`."""
    service = named(objs, "Service", host)
    [entry] = [p for p in service["spec"]["ports"] if p["port"] == port]
    [workload] = [w for w in workloads(objs) if service_selects(service, pod_labels(w))]
    [container] = pod_spec(workload)["containers"]
    return workload["metadata"]["name"], port_number(container, entry["targetPort"])


@pytest.mark.parametrize("variant", variant_ids())
def test_every_service_and_selector_finds_its_pods(variant: str) -> None:
    objs = objects(variant)
    for service in of_kind(objs, "Service"):
        for port in service["spec"]["ports"]:
            service_endpoint(objs, service["metadata"]["name"], port["port"])
    for workload in workloads(objs):
        assert selects(workload["spec"]["selector"], pod_labels(workload))
    statefulset_services = [s["spec"]["serviceName"] for s in of_kind(objs, "StatefulSet")]
    for name in statefulset_services:
        assert named(objs, "Service", name)["spec"]["clusterIP"] == "None"


def url_target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port, url
    return parts.hostname, parts.port


@pytest.mark.parametrize("variant", variant_ids())
def test_every_url_a_service_is_given_reaches_the_right_workload(variant: str) -> None:
    objs = objects(variant)
    wanted = {("conversation", "ASSISTANT_URL"): "assistant"}
    if variant == "default":
        wanted[("conversation", "REDIS_URL")] = "redis"
    if variant == "vllm":
        wanted[("assistant", "OPENAI_BASE_URL")] = "vllm"
    for (workload, setting), target in wanted.items():
        url = env_value(objs, workload, setting)
        assert service_endpoint(objs, *url_target(url))[0] == target, (workload, setting)
        assert (workload, url_target(url)[1]) in allowed_ingress(objs, named_workload(objs, target))


def named_workload(objs: list[Object], name: str) -> Object:
    [found] = [w for w in workloads(objs) if w["metadata"]["name"] == name]
    return found


def test_nginx_image_finds_conversation_through_its_service() -> None:
    dockerfile = (ROOT / "nginx" / "Dockerfile").read_text()
    upstream = re.search(r"--conversation (\S+):(\d+)", dockerfile)
    assert upstream, "expected nginx/Dockerfile to render its upstream with --conversation"
    objs = objects("default")
    host, port = upstream.group(1), int(upstream.group(2))
    assert service_endpoint(objs, host, port)[0] == "conversation"


def test_the_vllm_variant_serves_the_model_assistant_asks_for() -> None:
    objs = objects("vllm")
    assert env_value(objs, "assistant", "ASSISTANT_PROVIDER") == "openai"
    vllm = container_of(objs, "vllm")
    [model] = [e for e in vllm["env"] if e["name"] == "VLLM_MODEL"]
    assert model["valueFrom"]["configMapKeyRef"] == {"name": "assistant", "key": "OPENAI_MODEL"}
    assert vllm["args"][:2] == ["--model", "$(VLLM_MODEL)"]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert env_value(objs, "assistant", "OPENAI_MODEL")


# --- agreement with the images, compose and the settings ----------------------------------------


def dockerfile(service: str) -> str:
    return (ROOT / service / "Dockerfile").read_text()


@pytest.mark.parametrize("service", ["conversation", "assistant"])
def test_python_services_match_their_images(service: str) -> None:
    text = dockerfile(service)
    objs = objects("default")
    container = container_of(objs, service)
    exposed = re.search(r"^EXPOSE (\d+)$", text, re.M)
    user = re.search(r"^USER (\d+)", text, re.M)
    assert exposed and user, f"expected EXPOSE and a numeric USER in {service}/Dockerfile"
    assert port_number(container, int(exposed.group(1))) == int(exposed.group(1))
    security = pod_spec(named(objs, "Deployment", service))["securityContext"]
    assert security["runAsUser"] == int(user.group(1))
    assert container["image"] == f"chatstack-{service}:latest"


def test_nginx_matches_its_image() -> None:
    text = dockerfile("nginx")
    container = container_of(objects("default"), "nginx")
    listen = re.search(r"--listen (\d+)", text)
    prefix = re.search(r"--prefix (\S+)", text)
    assert listen and prefix, "expected nginx/Dockerfile to render with --listen and --prefix"
    assert port_number(container, int(listen.group(1))) == int(listen.group(1))
    # nginx writes its pid and temporary files under the prefix: a volume, as / is read-only.
    assert prefix.group(1) in {m["mountPath"] for m in container["volumeMounts"]}


def test_redis_is_the_compose_image_with_its_data_on_a_volume_claim() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    objs = objects("default")
    [statefulset] = of_kind(objs, "StatefulSet")
    redis = container_of(objs, "redis")
    assert redis["image"] == compose["services"]["redis"]["image"]
    args = redis["args"]
    option = {args[i]: args[i + 1] for i in range(1, len(args) - 1) if args[i].startswith("--")}
    assert option["--appendonly"] == "yes"
    assert option["--maxmemory-policy"] == "noeviction"
    assert quantity(option["--maxmemory"].replace("mb", "Mi")) < quantity(
        redis["resources"]["limits"]["memory"]
    )
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in redis["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == option["--dir"]


def documented_settings() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, re.M))


@pytest.mark.parametrize("variant", variant_ids())
def test_every_setting_given_to_our_services_is_documented(variant: str) -> None:
    objs = objects(variant)
    documented = documented_settings() | SETTINGS_BEING_ADDED
    for name in ("conversation", "assistant"):
        container = container_of(objs, name)
        given = {e["name"] for e in container.get("env", [])}
        for source in container.get("envFrom", []):
            given |= set(named(objs, "ConfigMap", source["configMapRef"]["name"])["data"])
        assert given - documented == set(), name


def test_llama_cpp_threads_match_the_cpu_limit() -> None:
    objs = objects("default")
    limit = quantity(container_of(objs, "assistant")["resources"]["limits"]["cpu"])
    assert int(env_value(objs, "assistant", "LOCAL_N_THREADS")) == limit
