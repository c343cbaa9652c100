"""The integrator REST API for SIS connections (``/api/v1/sis-connections/``)."""
