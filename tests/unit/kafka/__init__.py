"""Unit tests of syncd.kafka."""
