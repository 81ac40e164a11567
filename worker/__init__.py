"""The arq worker: runs the agent loop against a provider and publishes every chunk."""
