#!/usr/bin/env bash
# Build the image with Podman and check it against this machine's PostgreSQL and Redis (not part of the default
# test run: a build takes minutes). From the repository root:
#
#   bash deploy/image/test-image.sh                                   # extras server,postgres,redis
#   EXTRAS=server,postgres,redis,embeddings TORCH_FIND_LINKS=/opt/wheels bash deploy/image/test-image.sh
#
# It builds the base image if missing (deploy/image/build-base.sh: no registry of images is reachable here), builds
# the image, migrates a scratch database with the image's own CLI (`mnemostore db upgrade`: migrate first, then roll
# the API), starts the API (host network, a free port), waits for /readyz and reports how long that took, makes a
# tenant and a key with the image's CLI, appends a message and finds it by full-text search over HTTP, checks that
# the process is not root and that the HEALTHCHECK passes, then starts the worker role and stops it with SIGTERM.
# Prints the image size. Everything it made (containers, the database, Redis keys) is removed at the end.
#
# Environment: IMAGE, BASE_IMAGE, PYTHON, EXTRAS, TORCH_INDEX_URL / TORCH_FIND_LINKS (embeddings: where torch
# comes from; a folder given here is mounted into the build), PG_SERVER (postgresql://postgres@127.0.0.1:5432),
# REDIS_URL (redis://127.0.0.1:6379/0), SKIP_BUILD=1 to test an image already built.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGE=${IMAGE:-localhost/mnemostore:test}
BASE_IMAGE=${BASE_IMAGE:-localhost/debian-bookworm-python:12}
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-server,postgres,redis}
PG_SERVER=${PG_SERVER:-postgresql://postgres@127.0.0.1:5432}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
RUN_ID=$$-$RANDOM
DATABASE=mnemostore_image_${RUN_ID//-/_}
DATABASE_URL=$PG_SERVER/$DATABASE
PREFIX=mns-image-$RUN_ID
ADMIN_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '/+=\n')
API=mnemostore-image-api-$RUN_ID
WORKER=mnemostore-image-worker-$RUN_ID

# These machines: runc (crun fails on cgroups), cgroupfs (no systemd), no default ulimits (RLIMIT_NOFILE).
PODMAN=(podman --runtime /usr/sbin/runc --cgroup-manager=cgroupfs)
if ! grep -qs '^default_ulimits = \[\]' "${CONTAINERS_CONF:-/etc/containers/containers.conf}"; then
    export CONTAINERS_CONF=$(mktemp)
    printf '[containers]\ndefault_ulimits = []\n' > "$CONTAINERS_CONF"
fi

log() { printf '\n== %s\n' "$*"; }
die() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }

cleanup() {
    set +e
    for name in "$API" "$WORKER"; do
        "${PODMAN[@]}" rm -f -t 5 "$name" >/dev/null 2>&1
    done
    psql "$PG_SERVER/postgres" -qc "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null 2>&1
    redis-cli -u "$REDIS_URL" --scan --pattern "$PREFIX*" 2>/dev/null | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null
}
trap cleanup EXIT

# Environment of every container: configuration only from the environment, small pools (the server is shared).
ENV_ARGS=(
    -e "MNEMOSTORE_DATABASE_URL=$DATABASE_URL"
    -e "MNEMOSTORE_REDIS_URL=$REDIS_URL"
    -e "MNEMOSTORE_CACHE_KEY_PREFIX=$PREFIX"
    -e MNEMOSTORE_POOL_SIZE=2
    -e MNEMOSTORE_MAX_OVERFLOW=2
)
run() { "${PODMAN[@]}" run --rm --network=host --no-healthcheck "${ENV_ARGS[@]}" "$@"; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    case $BASE_IMAGE in
        localhost/debian-bookworm-python:*) BASE_IMAGE=$BASE_IMAGE bash "$ROOT/deploy/image/build-base.sh" ;;
    esac
    log "build $IMAGE (base $BASE_IMAGE, extras $EXTRAS)"
    build=(--format docker --network=host --volume /etc/ssl/certs:/etc/ssl/certs:ro
        --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "PYTHON=$PYTHON" --build-arg "EXTRAS=$EXTRAS")
    if [ -n "${TORCH_FIND_LINKS:-}" ]; then
        # A local folder of torch wheels (here: the CPU build on disk) instead of PyTorch's index.
        build+=(--volume "$TORCH_FIND_LINKS:/torch-wheels:ro" --build-arg TORCH_FIND_LINKS=/torch-wheels
            --build-arg "TORCH_INDEX_URL=${TORCH_INDEX_URL:-}")
    elif [ -n "${TORCH_INDEX_URL+set}" ]; then
        build+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
    fi
    started=$(now)
    "${PODMAN[@]}" build "${build[@]}" -t "$IMAGE" "$ROOT"
    printf 'built in %.0f s\n' "$(echo "$(now) - $started" | bc)"
fi

size=$("${PODMAN[@]}" image inspect "$IMAGE" --format '{{.Size}}')
user=$("${PODMAN[@]}" image inspect "$IMAGE" --format '{{.Config.User}}')
healthcheck=$("${PODMAN[@]}" image inspect "$IMAGE" --format '{{json .Config.Healthcheck}}')
printf 'image %s: %s bytes (%.0f MB), user %s\n' "$IMAGE" "$size" "$(echo "$size / 1000000" | bc -l)" "$user"
case $user in "" | 0 | 0:* | root | root:*) die "the image runs as root ($user)" ;; esac
case $healthcheck in *healthcheck.py*) ;; *) die "no HEALTHCHECK in the image (build with --format docker): $healthcheck" ;; esac

log "migrate a scratch database with the image's CLI (before the API starts)"
psql "$PG_SERVER/postgres" -qc "CREATE DATABASE $DATABASE"
run "$IMAGE" mnemostore db upgrade
run "$IMAGE" mnemostore db status

log "start the API"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
started=$(now)
"${PODMAN[@]}" run -d --name "$API" --network=host "${ENV_ARGS[@]}" \
    -e "MNEMOSTORE_SERVER_PORT=$PORT" -e "MNEMOSTORE_ADMIN_API_KEY=$ADMIN_KEY" "$IMAGE" 2>/dev/null >/dev/null
ready=""
for _ in $(seq 1 1200); do
    if curl -sf -o /dev/null "$URL/readyz"; then ready=$(now); break; fi
    "${PODMAN[@]}" container exists "$API" && [ "$("${PODMAN[@]}" inspect "$API" --format '{{.State.Running}}')" = true ] \
        || { "${PODMAN[@]}" logs "$API" >&2; die "the API container stopped"; }
    sleep 0.1
done
[ -n "$ready" ] || { "${PODMAN[@]}" logs "$API" >&2; die "/readyz did not answer 200 within 120 s"; }
printf 'start to ready: %.2f s\n' "$(echo "$ready - $started" | bc)"
curl -sS "$URL/readyz"; echo

embeddings=0
"${PODMAN[@]}" run --rm --no-healthcheck "$IMAGE" python -c 'import sentence_transformers' 2>/dev/null && embeddings=1
if [ "$embeddings" = 1 ]; then
    log "the embedding model: loaded by serve in the background; inside the image (it embeds with no network)"
    for _ in $(seq 1 1200); do
        state=$(curl -sS "$URL/readyz" | jq -r .checks.embedder.status)
        [ "$state" = ok ] && break
        sleep 0.1
    done
    [ "$state" = ok ] || die "the embedder did not load within 120 s"
    printf 'start to model loaded: %.2f s\n' "$(echo "$(now) - $started" | bc)"
    "${PODMAN[@]}" run --rm --no-healthcheck --network=none "$IMAGE" python -c "from mnemostore.config import Settings
from mnemostore.search import build_embedder
vector = build_embedder(Settings()).embed(['no network here'])[0]
print('offline embedding:', len(vector), 'dimensions')" 2>/dev/null
fi

log "the process is not root; the HEALTHCHECK passes"
uid=$("${PODMAN[@]}" exec "$API" id -u)
[ "$uid" != 0 ] || die "the API runs as root"
echo "uid $uid"
"${PODMAN[@]}" healthcheck run "$API" 2>/dev/null || die "the HEALTHCHECK failed"
echo "healthcheck: healthy"

log "a tenant and a key with the image's CLI; an append and a full-text search over HTTP"
TENANT=$("${PODMAN[@]}" exec "$API" mnemostore tenant create image-test)
KEY=$("${PODMAN[@]}" exec "$API" mnemostore tenant create-key image-test test-bot)
echo "tenant $TENANT"
J="Content-Type: application/json"
AUTH="Authorization: Bearer $KEY"
USER_ID=$(curl -sSf -X POST "$URL/v1/users/resolve" -H "$AUTH" -H "$J" \
    -d '{"channel": "web", "channel_user_id": "u-1", "username": "ada"}' | jq -r .id)
CHAT=$(curl -sSf -X POST "$URL/v1/conversations" -H "$AUTH" -H "$J" -d "{\"user_id\": \"$USER_ID\"}" | jq -r .id)
curl -sS --fail-with-body -X POST "$URL/v1/conversations/$CHAT/messages" -H "$AUTH" -H "$J" \
    -d '{"role": "user", "content": "Find me a hotel near the Alfama quarter of Lisbon"}' >/dev/null
found=$(curl -sS --fail-with-body -X POST "$URL/v1/search" -H "$AUTH" -H "$J" \
    -d '{"query": "Alfama hotel", "mode": "fulltext", "scope": "messages"}')
echo "$found" | jq -c '{mode, hits: [.items[] | .content]}'
[ "$(echo "$found" | jq '[.items[] | select(.content | contains("Alfama"))] | length')" -ge 1 ] \
    || die "full-text search did not find the message"
admin=$(curl -sSf "$URL/v1/tenants" -H "Authorization: Bearer $ADMIN_KEY" | jq '.items | length')
echo "admin API (key from the environment): $admin tenant(s)"

log "the worker role"
worker_env=()
if [ "$embeddings" = 0 ]; then
    # No embeddings extra in this image: the worker embeds through an embeddings service (openai) in production;
    # here the deterministic test embedder shows the role starts, claims jobs and stops cleanly.
    worker_env=(-e MNEMOSTORE_EMBEDDER=hashing)
fi
"${PODMAN[@]}" run -d --name "$WORKER" --network=host --no-healthcheck "${ENV_ARGS[@]}" "${worker_env[@]}" \
    "$IMAGE" mnemostore worker >/dev/null
for _ in $(seq 1 600); do
    "${PODMAN[@]}" logs "$WORKER" 2>&1 | grep -q "worker: embedding with" && break
    sleep 0.2
done
"${PODMAN[@]}" logs "$WORKER" 2>&1 | grep "worker: embedding with" || { "${PODMAN[@]}" logs "$WORKER" >&2; die "the worker did not start"; }
"${PODMAN[@]}" stop -t 30 "$WORKER" >/dev/null
"${PODMAN[@]}" logs "$WORKER" 2>&1 | grep "worker: stopped" || die "the worker did not stop cleanly on SIGTERM"
[ "$("${PODMAN[@]}" inspect "$WORKER" --format '{{.State.ExitCode}}')" = 0 ] || die "the worker exited non-zero"

log "the API stops on SIGTERM"
"${PODMAN[@]}" stop -t 30 "$API" >/dev/null
echo "exit code $("${PODMAN[@]}" inspect "$API" --format '{{.State.ExitCode}}')"

printf '\nOK: image %s, %.0f MB, start to ready %.2f s\n' "$IMAGE" "$(echo "$size / 1000000" | bc -l)" \
    "$(echo "$ready - $started" | bc)"
