"""aiokafka glue shared by both stages: client settings and topics (clients), partitioning
(partitioning), reading to the end (reading), commit positions of out-of-order work
(offsets), and the one consumer lifecycle with its commit rule (stage)."""
