"""The integrator REST API of the sync engine: sync runs and conflicts (``/api/v1/``)."""
