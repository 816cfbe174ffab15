"""Unit tests of syncd.core."""
