"""The API's one error shape: ``{"error": {"code": ..., "message": ..., "details": ...}}``."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import ApplicationError

logger = logging.getLogger("sas.api")


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
        # A bug, not a bad request: log it with its traceback and still answer in the one shape.
        logger.exception("unhandled API error")
        return Response(
            error_body("server_error", "The server could not complete the request."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
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


def error_response(
    code: str, message: str, *, status_code: int, details: Any = None
) -> JsonResponse:
    """The error shape for plain Django views (token endpoint, login throttles, unknown URLs)."""
    return JsonResponse(error_body(code, message, details), status=status_code)


# CSRF-exempt: API clients send no CSRF token, and a POST to an unknown URL (an action on a
# malformed id) must be a JSON 404, not Django's HTML 403. It reads and writes nothing.
@csrf_exempt
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Unknown URLs under ``/api/`` answer in the API's shape, not with an HTML page."""
    return error_response("not_found", "Not found.", status_code=404)
