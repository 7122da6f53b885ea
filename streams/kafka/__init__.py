"""Talking to Kafka: topic declarations, the one producer, the one partition-range reader."""
