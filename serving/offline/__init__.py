"""Scoring files and tables offline: `satchel batch` and the Spark UDF."""
