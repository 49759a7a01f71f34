"""LocalStack's twisted gateway, bound to the interface GATEWAY_LISTEN names.

LocalStack 2026.3's own twisted server listens on every IPv4 interface whatever host GATEWAY_LISTEN
gives (its TCP4ServerEndpoint gets no interface); the hypercorn one honours the host but hangs on
SIGTERM. LocalStack runs deployed code for anyone who reaches it, so the launcher selects this
server (GATEWAY_SERVER=twisted-loopback) and the gateway is reachable from this host only.
Loaded inside LocalStack's venv, like plugin.py.
"""

from __future__ import annotations

from typing import Any

from localstack import config
from localstack.runtime.server.core import RuntimeServerPlugin
from localstack.runtime.server.twisted import TwistedRuntimeServer


class InterfaceBoundTwistedServer(TwistedRuntimeServer):
    def register(self, gateway: Any, listen: list[Any], ssl_creds: tuple[str, str] | None = None) -> None:
        from localstack.aws.serving.twisted import TLSMultiplexerFactory
        from rolo.serving.twisted import TwistedGateway
        from twisted.internet import endpoints, reactor, ssl

        site = TwistedGateway(gateway)
        factory: Any = site
        if ssl_creds:  # LocalStack serves HTTP and HTTPS on the same port
            cert_file, key_file = ssl_creds
            context = ssl.DefaultOpenSSLContextFactory(key_file, cert_file)
            context.getContext().use_certificate_chain_file(cert_file)
            factory = TLSMultiplexerFactory(context, False, site)
        for address in listen:
            endpoint_type = (endpoints.TCP6ServerEndpoint if config.is_ipv6_address(address.host)
                             else endpoints.TCP4ServerEndpoint)
            endpoint_type(reactor, address.port, interface=address.host).listen(factory)


class InterfaceBoundTwistedServerPlugin(RuntimeServerPlugin):
    name = "twisted-loopback"

    def load(self, *args: Any, **kwargs: Any) -> InterfaceBoundTwistedServer:
        return InterfaceBoundTwistedServer()
