"""Every failure the client raises, as one tree under `ClientError`:

    ClientError              a failure the user can act on; `code` is the registry's error
    │                        code when it sent one
    ├── UsageError           a name, reference, platform or option that is not valid
    ├── NotFound             no such image, tag, blob, file or layout entry
    ├── Unauthorized         the registry wants credentials, or refused the ones given
    │   └── Denied           it knows who we are and refuses the operation (403 DENIED)
    │       └── InUse        Dockyard keeps a manifest an index of the repository still
    │                        names (409); `indexes` says which
    ├── DigestMismatch       bytes that are not the ones their digest describes (discarded)
    ├── RateLimited          429 Too Many Requests; `retry_after` in seconds when it said
    ├── ConnectionFailed     the registry could not be reached, or the connection broke
    │   └── TransferInterrupted
    │                        it broke in the middle of a body (the transfer can resume)
    └── CredentialsError     the docker credentials file or its helper failed

Catch `ClientError` for "anything the client tells the user"; the cli turns each branch into
its exit code in one place (`dockyard.cli.exits`), so the classes carry no exit codes.
"""

from __future__ import annotations


class ClientError(Exception):
    """A failure the user can act on; `code` is the registry's error code when there is one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class UsageError(ClientError):
    """The command was given something that is not a valid name, reference or option."""


class NotFound(ClientError):
    """What was named does not exist where it was looked for."""


class Unauthorized(ClientError):
    """The registry wants credentials, or refused the ones given."""


class Denied(Unauthorized):
    """The registry knows who we are and refuses the operation (403 DENIED)."""


class InUse(Denied):
    """Dockyard refuses to delete a manifest an index of the repository still names (409)."""

    def __init__(self, message: str, indexes: list[str]) -> None:
        super().__init__(message, "DENIED")
        self.indexes = indexes


class DigestMismatch(ClientError):
    """Bytes that are not the ones their digest describes; they were discarded."""


class RateLimited(ClientError):
    """The registry answered 429 Too Many Requests."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, "TOOMANYREQUESTS")
        self.retry_after = retry_after


class ConnectionFailed(ClientError):
    """The registry could not be reached, or the connection broke."""


class TransferInterrupted(ConnectionFailed):
    """The connection broke in the middle of a request or response body (resumable)."""


class CredentialsError(ClientError):
    """The credentials file or helper could not be read or written."""
