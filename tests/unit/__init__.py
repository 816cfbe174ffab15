"""Unit tests, one folder per syncd package (tests/unit/core tests syncd/core, ...)."""
