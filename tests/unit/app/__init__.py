"""Unit tests of syncd.app."""
