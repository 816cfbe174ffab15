"""Unit tests of syncd.obs."""
