"""Integration tests that run against the local fault-injecting server."""
