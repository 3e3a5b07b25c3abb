"""Typed failures of the Flink OpenAPI.

Each carries what the service said (request id, error code, message) for the logs and one short
human sentence (`user_message`) for chat. `retryable` is the only thing the retry loop looks at.
"""

from __future__ import annotations


class FlinkError(Exception):
    """Base of every failure talking to the Flink OpenAPI."""

    kind = "error"
    retryable = False
    default_sentence = "The Flink API call failed."

    def __init__(
        self,
        message: str = "",
        *,
        request_id: str | None = None,
        error_code: str | None = None,
        http_status: int | None = None,
        user_message: str | None = None,
    ) -> None:
        super().__init__(message or self.default_sentence)
        self.message = message or self.default_sentence
        self.request_id = request_id
        self.error_code = error_code
        self.http_status = http_status
        self._user_message = user_message

    @property
    def user_message(self) -> str:
        """One sentence a person in chat can act on."""
        return self._user_message or self.default_sentence

    def log_fields(self) -> dict[str, object]:
        return {
            "error_kind": self.kind,
            "error_code": self.error_code,
            "request_id": self.request_id,
            "http_status": self.http_status,
        }

    def __str__(self) -> str:
        parts = [self.message]
        if self.error_code:
            parts.append(f"code={self.error_code}")
        if self.request_id:
            parts.append(f"requestId={self.request_id}")
        return " ".join(parts)


class InvalidInput(FlinkError):
    kind = "invalid_input"
    default_sentence = "That id or name is not valid."


class FlinkAuthError(FlinkError):
    kind = "auth"
    default_sentence = (
        "The Flink API refused our credentials (signature or access key). Check the bot's AccessKey."
    )


class FlinkPermissionError(FlinkError):
    kind = "permission"
    default_sentence = "The bot's RAM identity is not allowed to do that in this workspace."


class FlinkNotFound(FlinkError):
    kind = "not_found"
    default_sentence = "Not found."


class JobNotFound(FlinkNotFound):
    kind = "job_not_found"
    default_sentence = "That job was not found."


class DeploymentNotFound(FlinkNotFound):
    kind = "deployment_not_found"
    default_sentence = "That deployment was not found."


class FlinkThrottled(FlinkError):
    kind = "throttled"
    retryable = True
    default_sentence = "The Flink API is throttling the bot; try again in a minute."

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class FlinkServiceError(FlinkError):
    kind = "service_error"
    retryable = True
    default_sentence = "The Flink API had an internal error; try again shortly."


class FlinkUnavailable(FlinkError):
    kind = "unavailable"
    retryable = True
    default_sentence = "The Flink API could not be reached."


class FlinkTimeout(FlinkError):
    kind = "timeout"
    retryable = True
    default_sentence = "The Flink API did not answer in time."


class FlinkUnreadable(FlinkError):
    kind = "unreadable"
    # Retried like a 5xx: a cut-off or garbled answer is usually a one-off of the path to the service.
    retryable = True
    default_sentence = "The Flink API sent an answer the bot could not read."


class FlinkRequestRejected(FlinkError):
    """A 4xx or `success: false` that fits no other class (bad parameter and the like)."""

    kind = "rejected"
    default_sentence = "The Flink API rejected the request."
