"""Unit tests: pure functions and small components, no network, no sockets."""
