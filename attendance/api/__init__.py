"""The integrator REST API for the attendance domain (``/api/v1/``)."""
