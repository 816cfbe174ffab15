"""Checks of the deployment files (Dockerfile, systemd, Kubernetes) and of the docs."""
