"""`ServingError`: a request that cannot be served, with the canonical code the stock server
would answer, and how each code reads over REST (model_servers/http_server.cc)."""

from __future__ import annotations

from http import HTTPStatus


class ServingError(Exception):
    """`code` is the canonical (gRPC) status code name, e.g. "INVALID_ARGUMENT"."""

    def __init__(self, code: str, message: str):
        if code not in HTTP_STATUS:
            raise ValueError(f"{code!r} is not a canonical status code name")
        super().__init__(message)
        self.code = code
        self.message = message


# Canonical code → HTTP status, as the stock REST server maps them.
HTTP_STATUS = {
    "OK": HTTPStatus.OK,
    "CANCELLED": 499,  # nginx's "client closed request", which the stock server answers
    "UNKNOWN": HTTPStatus.INTERNAL_SERVER_ERROR,
    "INVALID_ARGUMENT": HTTPStatus.BAD_REQUEST,
    "DEADLINE_EXCEEDED": HTTPStatus.GATEWAY_TIMEOUT,
    "NOT_FOUND": HTTPStatus.NOT_FOUND,
    "ALREADY_EXISTS": HTTPStatus.CONFLICT,
    "PERMISSION_DENIED": HTTPStatus.FORBIDDEN,
    "RESOURCE_EXHAUSTED": HTTPStatus.TOO_MANY_REQUESTS,
    "FAILED_PRECONDITION": HTTPStatus.BAD_REQUEST,
    "ABORTED": HTTPStatus.CONFLICT,
    "OUT_OF_RANGE": HTTPStatus.BAD_REQUEST,
    "UNIMPLEMENTED": HTTPStatus.NOT_IMPLEMENTED,
    "INTERNAL": HTTPStatus.INTERNAL_SERVER_ERROR,
    "UNAVAILABLE": HTTPStatus.SERVICE_UNAVAILABLE,
    "DATA_LOSS": HTTPStatus.INTERNAL_SERVER_ERROR,
    "UNAUTHENTICATED": HTTPStatus.UNAUTHORIZED,
}
