"""CLI commands (filled in by the owning module's issue)."""
from dabench.cli._app import app  # noqa: F401
from dabench.cli.ls import ls_app  # noqa: F401
