"""Unit tests of syncd.compute."""
