"""A command run in a container with ``exec``, its output read as a plain HTTP body.

docker-py's ``exec_run`` upgrades the connection and then reads the raw socket under the HTTP
response's buffered reader; bytes that reader took in with the headers are lost, and the
multiplexed stream falls out of step ("105 is not a valid stream"). Seen here over a TCP
``DOCKER_HOST``, where headers and the first frames arrive in one segment (the docker-py
issue #3160 kind of failure). Without the upgrade the engine sends the same frames as the
response body until it closes the connection, which requests reads whole; the frames are split
here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

STDOUT, STDERR = 1, 2
_HEADER = struct.Struct(">BxxxL")  # stream id, 3 bytes padding, frame length


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


def demultiplex(raw: bytes) -> tuple[bytes, bytes]:
    """Split the engine's multiplexed stream (8-byte header, then the frame) into stdout and
    stderr; a cut last frame keeps what arrived."""
    out, err = bytearray(), bytearray()
    at = 0
    while at + _HEADER.size <= len(raw):
        stream, length = _HEADER.unpack_from(raw, at)
        at += _HEADER.size
        if stream not in (0, STDOUT, STDERR):
            raise ValueError(
                f"not a multiplexed stream: frame of stream {stream} at byte {at - _HEADER.size}"
            )
        (err if stream == STDERR else out).extend(raw[at : at + length])
        at += length
    return bytes(out), bytes(err)


def exec_command(
    client: Any, container_id: str, argv: list[str], *, user: str, workdir: str, environment: dict[str, str]
) -> ExecResult:
    """Run ``argv`` in the running container, to its end; its exit code and output."""
    api = client.api
    exec_id = api.exec_create(container_id, argv, user=user, workdir=workdir, environment=environment)["Id"]
    # docker-py's own request helpers (its timeout, its base URL), without the upgrade headers
    response = api._post_json(api._url("/exec/{0}/start", exec_id), data={"Detach": False, "Tty": False})
    api._raise_for_status(response)
    stdout, stderr = demultiplex(response.content)
    return ExecResult(int(api.exec_inspect(exec_id)["ExitCode"]), stdout, stderr)
