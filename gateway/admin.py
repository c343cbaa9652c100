from gateway import (
    admin_credentials,  # noqa: F401
    admin_routes,  # noqa: F401
)
