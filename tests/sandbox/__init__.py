"""Tests of the marketplace sandboxes (syncd.testing.sandbox)."""
