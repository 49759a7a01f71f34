"""Developer tooling: the local AWS emulator, the local deployer and the demo (never shipped)."""
