"""The project's own no-Docker AWS emulator (moto server + real Python Lambdas) and local deployer."""

from .server import LocalAWS, loopback_host

__all__ = ["LocalAWS", "loopback_host"]
