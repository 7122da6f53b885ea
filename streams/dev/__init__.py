"""The local stack (Kafka and Redis on loopback), the seeded reference scenario, worker processes
and the demo that runs them end to end."""
