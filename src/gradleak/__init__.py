"""gradleak: measure how much private training data leaks from federated learning."""

__version__ = "0.1.0"
