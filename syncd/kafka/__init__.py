"""aiokafka glue shared by both stages: client settings, topics, partitioning, reading
to the end, dead-letter headers."""
