"""Tests that need the real local Kafka broker (started by tests/conftest.py)."""
