"""The integrator REST API of guardian notifications: notifications, deliveries and bulk
notices (``/api/v1/``)."""
