"""otter-service-submit: a Submit button for JupyterLab 4 and Notebook 7 that sends the
open notebook to otter-service through this server (see README.md)."""

__version__ = "0.1.0"


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "otter-service-submit"}]


def _jupyter_server_extension_points():
    return [{"module": "otter_service_submit"}]


def _load_jupyter_server_extension(server_app):
    from .handlers import setup_handlers

    setup_handlers(server_app)
