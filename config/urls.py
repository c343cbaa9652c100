from django.contrib import admin
from django.urls import path

from core import views as core_views

admin.site.site_header = "Student Attendance System"
admin.site.site_title = "Student Attendance System"
admin.site.index_title = "Administration"

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
]
