"""Federated learning: local training, aggregation, client defences and what each party sees."""
