"""drf-spectacular declarations of the integrator authentication schemes."""

from __future__ import annotations

from typing import Any, Literal

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "gateway.inbound.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": (
                "An API key (`sas_live_…`), created by a district administrator. May also be "
                "sent as `Authorization: Bearer <key>`."
            ),
        }


class OAuthScheme(OpenApiAuthenticationExtension):
    target_class = "gateway.inbound.authentication.OAuthTokenAuthentication"
    name = "OAuth2"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "oauth2",
            "description": "OAuth 2.0 client credentials; tokens live at most one hour.",
            "flows": {
                "clientCredentials": {
                    "tokenUrl": "/o/token/",
                    "scopes": dict(settings.API_SCOPES),
                }
            },
        }


class _ErrorDetail(serializers.Serializer[Any]):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class ErrorResponse(serializers.Serializer[Any]):
    """The one error shape of every 4xx and 5xx answer."""

    error = _ErrorDetail()


_ERRORS = {
    "400": "The request is not valid.",
    "401": "No valid credential.",
    "403": "The credential lacks the scope for this endpoint.",
    "429": "Too many requests; see Retry-After.",
}
_DETAIL_ERRORS = {"404": "Not found (or not in your district)."}
_POST_ERRORS = {
    "415": "The body must be JSON.",
    "409": "A request with this Idempotency-Key is still in progress.",
    "422": "The Idempotency-Key was used with a different body, or a reference is unknown.",
}

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Any unique string (a UUID) up to 255 characters. The same key with the same body "
        "returns the first response for 24 hours; with a different body it is a 422."
    ),
)
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description="An ETag from an earlier response: 304 without a body when unchanged.",
)


class IntegratorAutoSchema(AutoSchema):
    """Declares the error answers, the Idempotency-Key and If-None-Match headers and 304s of
    every integrator endpoint, so generated clients (and schemathesis) know them."""

    def get_override_parameters(self) -> list[Any]:
        params = list(super().get_override_parameters())
        if self.method == "POST":
            params.append(IDEMPOTENCY_KEY)
        elif self.method == "GET" and not self._is_list_view():
            params.append(IF_NONE_MATCH)
        return params

    def _get_response_bodies(
        self, direction: Literal["request", "response"] = "response"
    ) -> dict[str, Any]:
        responses = dict(super()._get_response_bodies(direction))
        errors = dict(_ERRORS)
        if self.method == "POST":
            errors.update(_POST_ERRORS)
            if "{" in self.path:
                # An action on one row (``conflicts/{id}/resolve/``): the row may not exist.
                errors.update(_DETAIL_ERRORS)
        elif not self._is_list_view():
            errors.update(_DETAIL_ERRORS)
            responses["304"] = {"description": "Not modified (the ETag still matches)."}
        for code, description in errors.items():
            if code not in responses:
                body = self._get_response_for_code(ErrorResponse, code, direction=direction)
                body["description"] = description
                responses[code] = body
        return responses
