"""LocalStack on this host without Docker: the slipstream Lambda runtime executor (plugin.py,
executor.py; loaded inside LocalStack's Python 3.13 venv) and the launcher the tests use
(launcher.py; runs in the project's venv and imports nothing from LocalStack)."""
