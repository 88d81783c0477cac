"""A real aiosmtpd server on loopback for the tests."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiosmtpd.controller import Controller


class EphemeralController(Controller):
    """Binds port 0 and learns the real port before aiosmtpd pokes the server."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@contextmanager
def serving(handler: Any, **kwargs: Any) -> Iterator[EphemeralController]:
    """`handler` answering on a free loopback port (also set as `handler.port`) until the
    block ends."""
    controller = EphemeralController(handler, hostname="127.0.0.1", port=0, **kwargs)
    controller.start()
    handler.port = controller.port
    try:
        yield controller
    finally:
        controller.stop()
