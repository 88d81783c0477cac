"""A real aiosmtpd server on loopback for the tests."""

from aiosmtpd.controller import Controller


class EphemeralController(Controller):
    """Binds port 0 and learns the real port before aiosmtpd pokes the server."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()
