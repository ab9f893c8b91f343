# jupyterhub_config.py fragment: otter-service as an *external* service that you run
# yourself (systemd, a container, Kubernetes). Give the service the same token as
# hub.api_token (or JUPYTERHUB_API_TOKEN) and the Hub's API URL as hub.api_url.
import os

c = get_config()  # noqa: F821

c.JupyterHub.services = [
    {
        "name": "otter_grade",
        # Where the Hub's proxy sends /services/otter_grade/.
        "url": "http://otter-service:10101",
        "api_token": os.environ["OTTER_SERVICE_API_TOKEN"],
        "oauth_no_confirm": True,
    },
]
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", "access:services!service=otter_grade"]},
]
