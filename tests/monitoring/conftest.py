"""Monitoring tests use the profiled model and make_frame from tests/conftest.py."""
