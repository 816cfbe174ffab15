"""Unit tests of syncd.contract."""
