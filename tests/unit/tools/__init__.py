"""Unit tests of syncd.tools."""
