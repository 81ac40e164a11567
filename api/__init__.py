"""The HTTP service: job routes and the SSE fan-out. Never imports `worker`."""
