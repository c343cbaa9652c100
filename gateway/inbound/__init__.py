"""Inbound side of the gateway: integrator credentials (API keys, OAuth 2.0 client
credentials), the principal they authenticate as, scopes, throttling and idempotency."""
