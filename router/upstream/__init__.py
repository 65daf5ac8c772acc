"""Calling models: transports (one request, one model) and the dispatcher (retries, fallbacks)."""
