"""Worker exceptions.

ProviderError         a model provider failed; `code` becomes the `job.failed` error code
└── UnsupportedModel  no provider serves the requested model
ToolError             a tool refused its input or failed; becomes a `tool.result` with
                      `is_error` (or `job.failed` `unknown_tool` for an unknown name)
OutputLimit           the job emitted more than `SPOOL_JOB_MAX_EVENTS` / `_BYTES`; becomes
                      `job.failed` `output_limit` with the partial output
"""

from spool.shared.errors import SpoolError


class ProviderError(SpoolError):
    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s  # the provider's Retry-After, when it sent one


class UnsupportedModel(ProviderError):
    def __init__(self, model: str) -> None:
        super().__init__("unsupported_model", f"no provider serves model {model!r}")


class ToolError(SpoolError):
    """A tool's error the model should see (its message becomes the result's output)."""


class OutputLimit(SpoolError):
    code = "output_limit"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
