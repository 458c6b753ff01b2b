"""Render a kustomization directory under deploy/kubernetes/ to plain Kubernetes objects.

`kubectl apply -k DIR` (kubectl's built-in kustomize) is how the manifests are meant to be
applied. Neither kustomize nor helm installs from the package registries these machines reach,
so the tests render the same directories with this module, which implements only the part of
kustomize the manifests use and refuses everything else:

- `resources`: YAML files (one or more documents each) and directories holding their own
  `kustomization.yaml`, rendered first (an overlay builds on a base);
- `patches` with `path`: strategic merge patches, each naming its target by apiVersion, kind
  and metadata.name. Maps merge key by key, a null value deletes the key, lists of
  containers, env, container ports, volumes and volumeMounts merge by their Kubernetes merge
  key (a patch of a Service's or a policy's `ports` is refused: their key differs), any other
  list is replaced, `$patch: delete` in a list item removes that item, and at the top it
  removes the whole object (alone in its file: kubectl's kustomize crashes on a file that
  deletes and patches more). Any other `$` directive is refused.

Run `python deploy/kubernetes/render.py deploy/kubernetes/overlays/vllm` to see the objects
an overlay produces, as multi-document YAML.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION = "kustomization.yaml"
SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "patches"}
# Kubernetes' patchMergeKey for the lists the manifests patch. A list field not named here
# is replaced whole by a patch, as strategic merge does for lists without a merge key.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}
DIRECTIVE = "$patch"

Object = dict[str, Any]
ObjectId = tuple[str, str, str]


class RenderError(Exception):
    """A kustomization this renderer cannot render faithfully, or one that is wrong."""


def object_id(obj: Object) -> ObjectId:
    try:
        return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
    except (KeyError, TypeError) as exc:
        raise RenderError(f"an object lacks apiVersion, kind or metadata.name: {obj!r}") from exc


def load_documents(path: Path) -> list[Object]:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for document in documents:
        if not isinstance(document, dict):
            raise RenderError(f"{path}: every document must be a mapping")
    return documents


def plain(value: Any) -> Any:
    """A copy of patch data that goes into the output as is: it must hold no directive (a
    `$` key) or null, which strategic merge would act on rather than copy."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.startswith("$") or item is None:
                raise RenderError(f"{key}: {item!r} is not supported in new content")
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def merge(base: Any, patch: Any, field: str = "") -> Any:
    """Strategic merge of `patch` into `base` (both plain YAML data); returns a new value."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if key.startswith("$"):
                raise RenderError(f"the directive {key} is not supported here")
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = merge(merged[key], value, key)
            else:
                merged[key] = plain(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        return merge_list(base, patch, MERGE_KEYS[field], field)
    return plain(patch)


def merge_list(base: list[Any], patch: list[Any], key: str, field: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in base]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise RenderError(f"every item patched into {field} needs its {key}: {item!r}")
        at = next((i for i, old in enumerate(merged) if old.get(key) == item[key]), None)
        if item.get(DIRECTIVE) == "delete":
            if at is None:
                raise RenderError(f"{field} has no item with {key} {item[key]!r} to delete")
            del merged[at]
        elif at is None:
            merged.append(plain(item))
        else:
            merged[at] = merge(merged[at], item)
    return merged


def apply_patch(objects: list[Object], patch: Object, source: Path) -> list[Object]:
    target = object_id(patch)
    index = next((i for i, obj in enumerate(objects) if object_id(obj) == target), None)
    if index is None:
        raise RenderError(f"{source}: no {'/'.join(target)} among the resources to patch")
    directive = patch.get(DIRECTIVE)
    if directive == "delete":
        return objects[:index] + objects[index + 1 :]
    if directive is not None:
        raise RenderError(f"{source}: only `{DIRECTIVE}: delete` is supported at the top")
    return [*objects[:index], merge(objects[index], patch), *objects[index + 1 :]]


def render(directory: Path) -> list[Object]:
    """Every object the kustomization in `directory` produces, in the order kustomize keeps
    (resources in the order listed, each patched in place)."""
    path = directory / KUSTOMIZATION
    if not path.is_file():
        raise RenderError(f"{directory} has no {KUSTOMIZATION}")
    kustomization = yaml.safe_load(path.read_text())
    if not isinstance(kustomization, dict):
        raise RenderError(f"{path}: must be a mapping")
    unsupported = set(kustomization) - SUPPORTED_FIELDS
    if unsupported:
        raise RenderError(f"{path}: {', '.join(sorted(unsupported))} not supported here")

    objects: list[Object] = []
    for entry in kustomization.get("resources", []):
        resource = directory / entry
        objects += render(resource) if resource.is_dir() else load_documents(resource)
    seen: set[ObjectId] = set()
    for obj in objects:
        if object_id(obj) in seen:
            raise RenderError(f"{path}: {'/'.join(object_id(obj))} is defined twice")
        seen.add(object_id(obj))

    for entry in kustomization.get("patches", []):
        if not isinstance(entry, dict) or set(entry) != {"path"}:
            raise RenderError(f"{path}: a patch must be given as its `path` alone: {entry!r}")
        patch_path = directory / entry["path"]
        patches = load_documents(patch_path)
        if len(patches) > 1 and any(DIRECTIVE in patch for patch in patches):
            # kubectl's kustomize (v5.5) crashes on such a file: one deletion per file.
            raise RenderError(f"{patch_path}: `{DIRECTIVE}` in a file of several patches")
        for patch in patches:
            objects = apply_patch(objects, patch, patch_path)
    return objects


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="a directory holding kustomization.yaml")
    args = parser.parse_args(argv)
    try:
        objects = render(args.directory)
    except RenderError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 1
    yaml.safe_dump_all(objects, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
