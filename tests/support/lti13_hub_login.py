"""An LTI 1.3 launch into a real JupyterHub, through the whole OIDC third-party login (not CI).

The student's browser, played with `requests` between two real programs:
  * the platform: tests/support/lti13_platform.py, whose /api/ routes are edX's own
    (lti-consumer-xblock 11.4.4): its launch gate `/api/lti_consumer/v1/launch/` is the OIDC
    authorization endpoint and signs the id_token with the passport's key;
  * the Hub: JupyterHub with `ltiauthenticator.lti13.auth.LTI13Authenticator`
    (jupyterhub-ltiauthenticator 1.6.3, installed by scripts/setup-jupyterhub.sh), configured
    as HUB_CONFIG below says.

The exchange:
  1. POST {platform}/_preflight {sub, label, email, oidc_url, redirect_uri, target_link_uri}:
     what edX's XBlock does when the student opens the component (launch data cached, the
     login URL built by edX's `prepare_preflight_url`). Answers {"login_url"}.
  2. GET login_url = {hub}/hub/lti13/oauth_login?iss=&client_id=&lti_deployment_id=
     &target_link_uri=&login_hint=&lti_message_hint= (as the platform sends the browser).
     The Hub answers 302 to its `authorize_url` with response_type=id_token, scope=openid,
     response_mode=form_post, prompt=none, client_id, redirect_uri={hub}/hub/lti13/oauth_callback,
     login_hint, nonce, state, lti_message_hint, and sets its encrypted state and nonce cookies.
  3. GET that URL on the platform (edX's launch_gate_endpoint; with --expired the test knob
     `otter_expired=1` is added): 200, edX's auto-submitting form (lti_1p3_launch.html) with
     action = redirect_uri and inputs id_token, state.
  4. POST id_token + state to the form's action with the Hub's cookies (a browser submits the
     form). The Hub verifies the id_token (key from jwks_endpoint by kid, RS256, iss, aud,
     exp, iat not older than 600 s, the LTI claims, the nonce against its cookie, the state
     against its cookie) and, if all is well, logs the user in (302 to the next URL, login
     cookie set) and keeps the decoded id_token as the user's auth state.
  5. GET {hub}/hub/api/user with the login cookie: the name the Hub logged in.

  --forge-key  step 4 posts the same claims and header (same kid) signed with a fresh RSA key
  --expired    edX signs the id_token at a clock 2 h behind (iat 2 h ago, exp 1 h ago)

usage: $HUB_VENV/bin/python tests/support/lti13_hub_login.py --hub http://127.0.0.1:PORT
           --platform http://127.0.0.1:PORT --label demo1 --sub SUB --email EMAIL
           [--name NAME] [--forge-key | --expired] [-v]
       $HUB_VENV/bin/python tests/support/lti13_hub_login.py --print-hub-config
           --platform URL --label demo1      (HUB_CONFIG filled from the platform's /_setup,
           with a new random CryptKeeper key)
Runs with the hub venv's python (scripts/setup-jupyterhub.sh: requests, and PyJWT and
cryptography from jupyterhub-ltiauthenticator; --forge-key needs those two); the lti13 venv's
python has them too. Prints one JSON line: {"ok": true, "hub_user": NAME, "status": 302} or
{"ok": false, "status": STATUS, "why": TEXT} (status: the Hub's answer to the id_token POST,
or of the step that failed). -v prints each request and answer on stderr.
Exit status: 0 logged in, 1 not logged in, 2 usage or connection error.
"""

import argparse
import json
import re
import secrets
import sys
import urllib.parse
from html import unescape
from html.parser import HTMLParser

import requests

# LTI13Authenticator's trait names (jupyterhub-ltiauthenticator 1.6.3, lti13/auth.py); the
# validator's `LTI13LaunchValidator.time_leeway` (0) and `max_age` (600) keep their defaults.
HUB_CONFIG = '''
c.JupyterHub.authenticator_class = "ltiauthenticator.lti13.auth.LTI13Authenticator"
# The platform (edX: its issuer is the LMS's base URL) and this tool's client id there
c.LTI13Authenticator.issuer = "{issuer}"
c.LTI13Authenticator.client_id = {{"{client_id}"}}
# The platform's OIDC authorization endpoint (edX: its launch gate)
c.LTI13Authenticator.authorize_url = "{authorize_url}"
# The platform's key set (edX: the passport's public_keysets URL); the id_token's kid picks the key
c.LTI13Authenticator.jwks_endpoint = "{jwks_endpoint}"
c.LTI13Authenticator.jwks_algorithms = ["RS256"]
# The Hub user is the id_token's `email` claim (the default; `sub` when a launch has no email)
c.LTI13Authenticator.username_key = "email"
c.Authenticator.allow_all = True
# The decoded id_token is kept as the user's auth state (encrypted): what otter-service reads
c.Authenticator.enable_auth_state = True
c.CryptKeeper.keys = [bytes.fromhex("{crypt_key_hex}")]
'''

LOGIN_PATH = "/hub/lti13/oauth_login"
CALLBACK_PATH = "/hub/lti13/oauth_callback"


class FormParser(HTMLParser):
    """The first form of a page: its action and its inputs."""

    def __init__(self):
        super().__init__()
        self.action, self.inputs, self.forms = None, {}, 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms += 1
            if self.forms == 1:
                self.action = a.get("action")
        elif tag == "input" and self.forms == 1 and a.get("name"):
            self.inputs[a["name"]] = a.get("value") or ""


def page_text(html):
    """The words of an HTML error page, for `why`: JupyterHub's error block (`<div
    class="error">`: "400 : Signature has expired ...") or the whole body (edX's error page)."""
    html = html or ""
    m = re.search(r'<div class="error">(.*?)</div>', html, re.S)
    if m:
        html = m.group(1)
    html = re.sub(r"<(script|style|noscript)\b.*?</\1>", " ", html, flags=re.S | re.I)
    text = unescape(re.sub(r"<[^>]*>", " ", html))
    return re.sub(r"\s+", " ", text).strip()[:300]


class Browser:
    def __init__(self, verbose):
        self.session = requests.Session()
        self.verbose = verbose

    def send(self, method, url, **kw):
        r = self.session.request(method, url, allow_redirects=False, timeout=30, **kw)
        if self.verbose:
            print(f"> {method} {url}", file=sys.stderr)
            if kw.get("data"):
                print(f"  form: {', '.join(f'{k}=<{len(v)} chars>' for k, v in kw['data'].items())}", file=sys.stderr)
            loc = r.headers.get("Location", "")
            print(f"< {r.status_code}{' Location: ' + loc if loc else ''}"
                  f"{' Set-Cookie: ' + ', '.join(c.name for c in r.cookies) if r.cookies else ''}", file=sys.stderr)
        return r


def forge(id_token):
    """The same header (kid) and claims, signed with a key the platform never had."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    header = jwt.get_unverified_header(id_token)
    claims = jwt.decode(id_token, options={"verify_signature": False})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": header.get("kid")})


def fail(status, why):
    print(json.dumps({"ok": False, "status": status, "why": why}))
    return 1


def login(args):
    hub = args.hub.rstrip("/")
    platform = args.platform.rstrip("/")
    b = Browser(args.verbose)
    # 1. the platform prepares the launch (edX's XBlock)
    r = b.send("POST", platform + "/_preflight", json={
        "sub": args.sub, "label": args.label, "email": args.email, "name": args.name or "",
        "oidc_url": hub + LOGIN_PATH, "redirect_uri": hub + CALLBACK_PATH,
        "target_link_uri": hub + "/hub",
    })
    if r.status_code != 200:
        return fail(r.status_code, f"platform /_preflight: {r.text[:300]}")
    login_url = r.json()["login_url"]
    # 2. third-party initiated login at the Hub
    r = b.send("GET", login_url)
    location = r.headers.get("Location", "")
    if r.status_code != 302 or not location:
        return fail(r.status_code, f"Hub oauth_login did not redirect: {page_text(r.text)}")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    for need in ("state", "nonce", "redirect_uri", "login_hint", "client_id"):
        if need not in query:
            return fail(r.status_code, f"Hub's authorization request has no {need}: {location}")
    # 3. the platform's authorization endpoint (edX's launch gate)
    if args.expired:
        location += ("&" if "?" in location else "?") + "otter_expired=1"
    r = b.send("GET", location)
    form = FormParser()
    form.feed(r.text)
    if r.status_code != 200 or not form.action or "id_token" not in form.inputs:
        return fail(r.status_code, f"platform authorization endpoint: {page_text(r.text)}")
    data = {"id_token": form.inputs["id_token"], "state": form.inputs.get("state", "")}
    if args.forge_key:
        data["id_token"] = forge(data["id_token"])
    # 4. the auto-submitted form: the launch, at the Hub's redirect_uri
    r = b.send("POST", urllib.parse.urljoin(location, form.action), data=data)
    status = r.status_code
    if status != 302:
        return fail(status, page_text(r.text))
    # 5. who the Hub says we are now (its API with the login cookie; the xsrf token JupyterHub
    # asks of cookie-authenticated API requests is its _xsrf cookie, if set)
    headers = {}
    xsrf = b.session.cookies.get("_xsrf")
    if xsrf:
        headers["X-XSRFToken"] = xsrf
    who = b.send("GET", hub + "/hub/api/user", headers=headers)
    if who.status_code != 200:
        return fail(status, f"the Hub redirected ({r.headers.get('Location')}) but /hub/api/user answers "
                            f"{who.status_code}: {who.text[:200]}")
    print(json.dumps({"ok": True, "hub_user": who.json()["name"], "status": status}))
    return 0


def print_hub_config(args):
    r = requests.post(args.platform.rstrip("/") + "/_setup",
                      json={"lineitems": [args.label], "score_maximum": args.score_maximum}, timeout=30)
    r.raise_for_status()
    edx = r.json()["edx"]
    print(HUB_CONFIG.format(
        issuer=edx["issuer"], client_id=edx["client_id"],
        authorize_url=args.platform.rstrip("/") + "/api/lti_consumer/v1/launch/",
        jwks_endpoint=edx["keyset_url"], crypt_key_hex=secrets.token_hex(32),
    ))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hub", help="the Hub's public URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--platform", required=True, help="lti13_platform.py's URL")
    p.add_argument("--label", required=True, help="a line item label given to the platform's /_setup")
    p.add_argument("--sub", help="the student's LTI user id (the id_token's sub)")
    p.add_argument("--email", help="the student's email (the id_token's email claim)")
    p.add_argument("--name", help="the student's full name (the id_token's name claim)")
    bad = p.add_mutually_exclusive_group()
    bad.add_argument("--forge-key", action="store_true", help="sign the id_token with a fresh key, same kid")
    bad.add_argument("--expired", action="store_true", help="have the platform sign an expired id_token")
    p.add_argument("--print-hub-config", action="store_true", help="print HUB_CONFIG for the platform")
    p.add_argument("--score-maximum", type=float, default=5, help="for --print-hub-config's /_setup")
    p.add_argument("-v", "--verbose", action="store_true", help="the HTTP exchange on stderr")
    args = p.parse_args()
    try:
        if args.print_hub_config:
            return print_hub_config(args)
        if not (args.hub and args.sub and args.email):
            p.error("--hub, --sub and --email are needed for a login")
        return login(args)
    except requests.RequestException as e:
        print(json.dumps({"ok": False, "status": None, "why": f"{type(e).__name__}: {e}"}))
        return 2


if __name__ == "__main__":
    sys.exit(main())
