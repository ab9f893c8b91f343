# JupyterHub for deployment/local/compose.yaml: DummyAuthenticator (password "demo"),
# otter-service as an external service at http://otter-service:10101.
import os

c = get_config()  # noqa: F821
c.JupyterHub.bind_url = "http://0.0.0.0:8000"
c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
c.JupyterHub.hub_connect_url = "http://hub:8081"
c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/data/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/srv/jupyterhub/data/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "demo"
c.Authenticator.allow_all = True
c.JupyterHub.default_url = "/services/otter_grade/"
c.JupyterHub.services = [
    {
        "name": "otter_grade",
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
# Hub's proxy, which single-user servers in this container reach on port 8000.
c.Spawner.environment = {"OTTER_SERVICE_URL": "http://127.0.0.1:8000/services/otter_grade/"}
