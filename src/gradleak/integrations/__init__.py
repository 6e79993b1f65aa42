"""Integrations with federated-learning frameworks; each one's framework is an optional extra."""
