"""Unit tests of syncd.config."""
