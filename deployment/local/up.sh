#!/usr/bin/env bash
# Bring up JupyterHub + otter-service with docker compose (needs an image registry for the
# base images, and the grader image built: scripts/build-grader-image.sh). Without a
# registry, use scripts/demo.sh instead (the same setup without containers).
set -euo pipefail
cd "$(dirname "$0")"
[ -f .env ] || printf 'OTTER_SERVICE_API_TOKEN=%s\nDOCKER_GID=%s\n' \
  "$(openssl rand -hex 32)" "$(stat -c %g /var/run/docker.sock)" > .env
docker compose up -d --build
echo "JupyterHub: http://127.0.0.1:8000/services/otter_grade/ (any user, password: demo)"
