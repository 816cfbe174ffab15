"""Offline commands over Kafka: views and reports."""
