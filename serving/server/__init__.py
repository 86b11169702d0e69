"""The scoring server: the data plane and model repository, the HTTP transport and its
middleware, batching, metrics, worker processes and options."""
