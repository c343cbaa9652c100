from django.contrib import admin
from django.urls import include, path

from core import views as core_views

admin.site.site_header = "Student Attendance System"
admin.site.site_title = "Student Attendance System"
admin.site.index_title = "Administration"
# Django's navigation sidebar repeats the home page's list of apps and takes a quarter of a
# laptop's screen from every list (a sync run list at 1280 px scrolled sideways with it).
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    # Before the admin: /admin/login/ is throttled there; /o/token/ for integrators.
    path("", include("gateway.inbound.urls")),
    path("api/", include("config.api_urls")),
    path("admin/", admin.site.urls),
    path("portal/", include("portal.urls")),
    path("hooks/", include("notifications.urls")),  # provider webhooks (notifications)
    path("hooks/sync/", include("syncing.urls")),  # SIS change events (syncing)
    path("", include("gateway.urls")),  # /metrics only (token-protected)
]
