"""Test suite; a package so that tests import shared helpers as ``tests.models``."""
