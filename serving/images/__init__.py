"""Container images: the Dockerfile template, a hermetic build context, wheels."""
