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
# Users may reach the service; so may their servers' tokens, which the Submit button's
# server extension (clients/jupyter) submits with. A server's token only gets scopes its
# user also holds, so both roles need the scope; servers started before this change keep
# their old token until restarted.
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", "access:services!service=otter_grade"]},
    {
        "name": "server",
        "scopes": ["users:activity!user", "access:servers!server", "access:services!service=otter_grade"],
    },
    # Staff pages: the service reads users' admin flag and groups (course staff_group).
    {"name": "otter-service-reads-users", "scopes": ["read:users"], "services": ["otter_grade"]},
]
# Where the Submit button's server extension sends notebooks: the service through the
# Hub's proxy, as the single-user servers reach it.
c.Spawner.environment = {"OTTER_SERVICE_URL": "http://proxy-public/services/otter_grade/"}
