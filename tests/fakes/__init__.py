"""Local fake provider servers speaking each provider's SSE wire format."""
