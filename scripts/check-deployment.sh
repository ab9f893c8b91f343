#!/usr/bin/env bash
# Validate the deployment files offline: Kubernetes manifests against the Kubernetes API
# schemas (kubernetes-validate, which bundles them), the KEDA ScaledObject against our own
# schema of it (deployment/kubernetes/schemas/; KEDA's CRDs are not in kubernetes-validate),
# the compose file against the Compose specification (check-jsonschema's vendored schema),
# how the grader-host pieces name each other (scripts/check-deployment-wiring.py), the
# Helm values fragment as YAML, and the JupyterHub config snippets as Python. Idempotent
# venv in ~/.cache/otter-service/deploy-check-venv. Writes nothing into the work tree.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
venv=${OTTER_DEPLOY_CHECK_VENV:-$HOME/.cache/otter-service/deploy-check-venv}
want="kubernetes-validate==1.37.0 check-jsonschema==0.39.0 pyyaml"
if [ "$(cat "$venv/.otter-stamp" 2>/dev/null)" != "$want" ]; then
  echo "Installing $want into $venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  with_progress "pip install $want" "$venv/bin/pip" install $want
  echo "$want" > "$venv/.otter-stamp"
fi

echo "== Kubernetes manifests"
"$venv/bin/kubernetes-validate" --strict --quiet \
  deployment/kubernetes/otter-service.yaml deployment/kubernetes/grader-hosts.yaml
echo "== KEDA ScaledObject (our schema, itself checked against its metaschema)"
"$venv/bin/check-jsonschema" --check-metaschema deployment/kubernetes/schemas/keda-scaledobject.schema.json
"$venv/bin/check-jsonschema" --schemafile deployment/kubernetes/schemas/keda-scaledobject.schema.json \
  deployment/kubernetes/grader-autoscaling.yaml
echo "== grader hosts wiring"
"$venv/bin/python" scripts/check-deployment-wiring.py
echo "== compose file"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deployment/local/compose.yaml
echo "== YAML and Python fragments"
"$venv/bin/python" - <<'PY'
import glob, yaml
for f in ["deployment/jupyterhub/values.yaml", "deployment/kubernetes/kustomization.yaml"]:
    yaml.safe_load(open(f))
    print("ok", f)
for f in glob.glob("deployment/**/*.py", recursive=True):
    # compile() checks the syntax without writing a __pycache__/*.pyc into the work tree.
    with open(f, encoding="utf-8") as src:
        compile(src.read(), f, "exec")
    print("ok", f)
PY
echo "deployment files are valid"
