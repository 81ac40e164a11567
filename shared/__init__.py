"""What the API and the workers must agree on: wire schemas, settings, Redis keys and connections.

`shared` imports neither `api` nor `worker`.
"""
