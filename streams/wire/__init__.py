"""Bytes <-> records: the Avro codec of every topic and the JSON-lines form people type and read."""
