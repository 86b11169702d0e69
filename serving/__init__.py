"""Serving targets: REST, Spark and container images, all over the generic ``Model``."""
