"""Test suite package: lets tests import helpers as ``tests.server``."""
