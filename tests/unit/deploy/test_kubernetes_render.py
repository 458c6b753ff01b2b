"""deploy/kubernetes/render.py: the kustomize subset the manifests use, and refusals of the rest.

Each case writes a small kustomization to a temporary directory and renders it; the semantics
checked are strategic merge's (maps merge, null deletes, containers/env/volumeMounts merge by
their Kubernetes merge key, other lists are replaced, `$patch: delete`).
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.kubernetes.render import RenderError, main, render

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"tier": "front", "team": "chat"}},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "web:1",
                        "args": ["--port", "8000"],
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    },
                    {"name": "sidecar", "image": "sidecar:1"},
                ]
            }
        },
    },
}
CONFIG_MAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "settings"},
    "data": {"KEEP": "yes", "DROP": "soon"},
}


def write_yaml(path: Path, *documents: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))


def kustomization(directory: Path, **fields: Any) -> Path:
    doc = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **fields}
    write_yaml(directory / "kustomization.yaml", doc)
    return directory


@pytest.fixture
def base(tmp_path: Path) -> Path:
    write_yaml(tmp_path / "base" / "app.yaml", DEPLOYMENT, CONFIG_MAP)
    return kustomization(tmp_path / "base", resources=["app.yaml"])


def overlay(tmp_path: Path, *patch: Any) -> Path:
    write_yaml(tmp_path / "overlay" / "patch.yaml", *patch)
    return kustomization(
        tmp_path / "overlay", resources=["../base"], patches=[{"path": "patch.yaml"}]
    )


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind]
    return found


def web_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = by_kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert isinstance(containers[0], dict)
    return containers[0]


def test_resources_are_rendered_in_order_from_files_and_directories(
    base: Path, tmp_path: Path
) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}
    write_yaml(tmp_path / "top" / "service.yaml", service)
    top = kustomization(tmp_path / "top", resources=["../base", "service.yaml"])
    assert render(top) == [DEPLOYMENT, CONFIG_MAP, service]


def test_a_patch_merges_maps_and_a_null_deletes_a_key(base: Path, tmp_path: Path) -> None:
    patch = {**CONFIG_MAP, "data": {"DROP": None, "NEW": "added"}}
    label = {**DEPLOYMENT, "metadata": {"name": "web", "labels": {"tier": "back"}}}
    objects = render(overlay(tmp_path, patch, label))
    assert by_kind(objects, "ConfigMap")["data"] == {"KEEP": "yes", "NEW": "added"}
    labels = by_kind(objects, "Deployment")["metadata"]["labels"]
    assert labels == {"tier": "back", "team": "chat"}


def test_containers_and_env_merge_by_name_other_lists_are_replaced(
    base: Path, tmp_path: Path
) -> None:
    container = {
        "name": "web",
        "args": ["--port", "9000"],
        "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
        "volumeMounts": [{"name": "cache", "mountPath": "/tmp"}],
    }
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }
    objects = render(overlay(tmp_path, patch))
    web = web_container(objects)
    assert web["image"] == "web:1"
    assert web["args"] == ["--port", "9000"]
    assert web["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "two"},
        {"name": "C", "value": "3"},
    ]
    assert web["volumeMounts"] == [{"name": "cache", "mountPath": "/tmp"}]
    containers = by_kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web", "sidecar"]
    # The base itself is untouched: overlays never share state with it.
    assert render(base) == [DEPLOYMENT, CONFIG_MAP]


def test_patch_delete_removes_an_object(base: Path, tmp_path: Path) -> None:
    objects = render(overlay(tmp_path, {"$patch": "delete", **CONFIG_MAP}))
    assert [o["kind"] for o in objects] == ["Deployment"]


def test_patch_delete_removes_a_list_item(base: Path, tmp_path: Path) -> None:
    drop_env = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "web", "env": [{"name": "A", "$patch": "delete"}]}]
                }
            }
        },
    }
    objects = render(overlay(tmp_path, drop_env))
    assert web_container(objects)["env"] == [{"name": "B", "value": "2"}]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"resources": ["../base"], "namePrefix": "x-"}, "namePrefix not supported"),
        (
            {"resources": ["../base"], "patches": [{"path": "p.yaml", "target": {"kind": "X"}}]},
            "as its `path` alone",
        ),
        ({"resources": ["../base", "../base/app.yaml"]}, "apps/v1/Deployment/web is defined twice"),
    ],
    ids=["unknown field", "patch with a target", "duplicate object"],
)
def test_what_the_subset_does_not_cover_is_refused(
    base: Path, tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(RenderError, match=message):
        render(kustomization(tmp_path / "overlay", **fields))


def test_a_deletion_among_other_patches_in_one_file_is_refused(base: Path, tmp_path: Path) -> None:
    drop_map = {"$patch": "delete", **CONFIG_MAP}
    label = {**DEPLOYMENT, "metadata": {"name": "web", "labels": {"tier": "back"}}}
    with pytest.raises(RenderError, match="in a file of several patches"):
        render(overlay(tmp_path, label, drop_map))


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"name": "web", "$retainKeys": ["image"]}, r"directive \$retainKeys"),
        ({"name": "web", "env": [{"name": "A", "$patch": "replace"}]}, r"directive \$patch "),
        ({"name": "extra", "env": [{"name": "A", "value": None}]}, "value: None"),
    ],
    ids=["other directive", "other list directive", "null in new content"],
)
def test_patch_directives_beyond_delete_are_refused(
    base: Path, tmp_path: Path, container: dict[str, Any], message: str
) -> None:
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }
    with pytest.raises(RenderError, match=message):
        render(overlay(tmp_path, patch))


def test_a_patch_for_a_missing_object_is_refused(base: Path, tmp_path: Path) -> None:
    stray = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nope"}, "data": {}}
    with pytest.raises(RenderError, match="no v1/ConfigMap/nope among the resources"):
        render(overlay(tmp_path, stray))


def test_deleting_a_missing_list_item_is_refused(base: Path, tmp_path: Path) -> None:
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "db", "$patch": "delete"}]}}},
    }
    with pytest.raises(RenderError, match="containers has no item with name 'db'"):
        render(overlay(tmp_path, patch))


def test_a_directory_without_a_kustomization_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"has no kustomization\.yaml"):
        render(tmp_path)


def test_the_command_prints_the_objects_as_yaml(base: Path) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main([str(base)]) == 0
    assert list(yaml.safe_load_all(out.getvalue())) == [DEPLOYMENT, CONFIG_MAP]


def test_the_command_names_the_problem_and_fails(tmp_path: Path) -> None:
    err = io.StringIO()
    with redirect_stderr(err):
        assert main([str(tmp_path)]) == 1
    assert "has no kustomization.yaml" in err.getvalue()
