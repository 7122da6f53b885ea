"""I/O around the pure processors: Kafka, Redis, Avro, the worker app, replay and the CLI."""
