"""The compute stage: input records -> per-SKU state -> desired quantities."""
