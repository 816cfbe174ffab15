"""Observability: JSON logs, Prometheus metrics, health and systemd notify."""
