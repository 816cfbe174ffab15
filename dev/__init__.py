"""Development tools for syncd (a local Kafka broker: see dev/kafka.py); not shipped."""
