"""Unit tests of syncd.channels (each platform client against its sandbox)."""
