# jupyterhub_config.py fragment: otter-service as a *managed* service. The Hub starts it,
# passes JUPYTERHUB_API_TOKEN, JUPYTERHUB_API_URL, JUPYTERHUB_SERVICE_PREFIX,
# JUPYTERHUB_SERVICE_URL, JUPYTERHUB_CLIENT_ID, JUPYTERHUB_OAUTH_CALLBACK_URL and
# JUPYTERHUB_OAUTH_ACCESS_SCOPES, and proxies /services/otter_grade/ to it.
c = get_config()  # noqa: F821

c.JupyterHub.services = [
    {
        "name": "otter_grade",
        "url": "http://127.0.0.1:10101",
        "command": ["/usr/local/bin/otter-service", "serve", "--config", "/etc/otter/otter.toml"],
        # The login page of the Hub is enough; no "authorize this service?" page.
        "oauth_no_confirm": True,
        "environment": {
            "OTTER_DATABASE__PATH": "/var/lib/otter/otter-service.db",
            # The Hub passes only a few variables through; add what the service needs.
            "OTTER_LTI__CONSUMER_SECRET_FILE": "/etc/otter/lti_secret",
        },
    },
]

# Without this, users get 403 from the service.
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", "access:services!service=otter_grade"]},
    # Lets the Submit button's server extension (clients/jupyter) submit with the
    # single-user server's own token. A server's token only gets scopes its user also
    # holds, so both roles need the scope; running servers keep their old token until
    # restarted.
    {
        "name": "server",
        "scopes": ["users:activity!user", "access:servers!server", "access:services!service=otter_grade"],
    },
    # Staff pages: the service reads users' admin flag and groups (course staff_group).
    {"name": "otter-service-reads-users", "scopes": ["read:users"], "services": ["otter_grade"]},
]
# Where the Submit button's server extension sends notebooks (the Hub's public URL).
c.Spawner.environment = {"OTTER_SERVICE_URL": "https://hub.example.org/services/otter_grade/"}
