"""Kubernetes manifests (kustomize layout) and their renderer."""
