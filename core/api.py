"""The API's one error shape: ``{"error": {"code": ..., "message": ..., "details": ...}}``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import ApplicationError


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        code, message, details = "validation_error", "The request is not valid.", response.data
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else str(exc.default_code)
        message = str(detail) if isinstance(detail, str) else str(exc.default_detail)
        details = {}
    else:  # pragma: no cover - DRF only handles APIException subclasses
        code, message, details = "error", "The request failed.", {}
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
        code = "throttled"
    response.data = error_body(str(code), message, details)
    return response
