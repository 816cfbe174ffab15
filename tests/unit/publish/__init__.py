"""Unit tests of syncd.publish."""
