"""Bridges from gradleak to federated-learning frameworks; each imports its framework lazily."""
