"""The registry server: MLflow's model registry REST API and satchel's own API over the
core registry store (:mod:`satchel.registry`), with token roles. A transport: every
decision lives in the store; this package maps HTTP to calls and errors to statuses."""
