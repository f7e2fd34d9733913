#!/usr/bin/env bash
# Validate compose.yaml and run the whole stack with Podman (not part of the default test run: minutes). From the
# repository root:
#
#   bash deploy/image/test-compose.sh
#
# 1. Validates the file with podman-compose (`config`, installed into a scratch virtual environment when missing)
#    and, when it is installed, Debian's docker-compose 1.29 (which predates the top-level `name`: checked without
#    it). A .env is required: both are also run without one, and must refuse (POSTGRES_PASSWORD).
# 2. Runs the stack in a scratch folder (a copy of compose.yaml and deploy/prometheus, an .env made from
#    .env.example) with every profile: the image $IMAGE (built and checked by test-image.sh when missing, with the
#    embeddings extra, torch from $TORCH_FIND_LINKS), and, where the official server images cannot be pulled,
#    stand-ins built from deploy/image/stand-ins (POSTGRES_IMAGE and friends override them).
#    Podman 4.3 (Debian 12) neither schedules health checks without systemd nor starts a container whose
#    dependency has exited, and podman-compose ignores `service_healthy` on it: so this script starts the services
#    in the order compose.yaml's depends_on gives (postgres and redis healthy, migrate completed, then the rest,
#    with --no-deps) and runs the health checks itself. With Docker Compose, `docker compose up -d` does all that.
# KEEP=1 leaves the stack running (and says how to reach it).
# 3. Checks: every service healthy; an append, a full-text and a semantic search (pgvector, the worker embeds)
#    through the published port; the backup service's verified archive in the `backups` volume; Prometheus
#    scraping the API. Then `down -v`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGE=${IMAGE:-localhost/mnemostore:embeddings}
BASE_IMAGE=${BASE_IMAGE:-localhost/debian-bookworm-python:12}
PROJECT=mnemostore-stack-$$
WORK=$(mktemp -d /tmp/mnemostore-stack.XXXXXX)
COMPOSE_VENV=${COMPOSE_VENV:-/tmp/mnemostore-podman-compose}

# These machines: runc (crun fails on cgroups), cgroupfs (no systemd), no default ulimits (RLIMIT_NOFILE).
export CONTAINERS_CONF=$WORK/containers.conf
printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n' > "$CONTAINERS_CONF"

log() { printf '\n== %s\n' "$*"; }
die() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

if [ ! -x "$COMPOSE_VENV/bin/podman-compose" ]; then
    python3 -m venv "$COMPOSE_VENV"
    "$COMPOSE_VENV/bin/pip" install -q podman-compose
fi
pc() { (cd "$WORK" && "$COMPOSE_VENV/bin/podman-compose" -p "$PROJECT" --profile monitoring "$@"); }
container() { echo "${PROJECT}_$1_1"; }

cleanup() {
    set +e
    if [ "${KEEP:-0}" = 1 ]; then echo "kept: cd $WORK && $COMPOSE_VENV/bin/podman-compose -p $PROJECT ..."; return; fi
    pc down -v -t 10 >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

cp "$ROOT/compose.yaml" "$WORK/"
mkdir -p "$WORK/deploy" && cp -r "$ROOT/deploy/prometheus" "$WORK/deploy/"

log "validate compose.yaml"
if pc config >/dev/null 2>"$WORK/err"; then die "podman-compose accepted the stack without POSTGRES_PASSWORD"; fi
grep -q POSTGRES_PASSWORD "$WORK/err" && echo "without .env: refused, naming POSTGRES_PASSWORD"
API_PORT=$(free_port)
PROMETHEUS_PORT=$(free_port)
{
    sed 's/^POSTGRES_PASSWORD=$/POSTGRES_PASSWORD='"$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"'/' "$ROOT/.env.example"
    echo "MNEMOSTORE_IMAGE=$IMAGE"
    echo "MNEMOSTORE_PORT=$API_PORT"
    echo "PROMETHEUS_PORT=$PROMETHEUS_PORT"
    echo "MNEMOSTORE_POOL_SIZE=2"
    echo "MNEMOSTORE_MAX_OVERFLOW=2"
} > "$WORK/.env"
pc config >/dev/null && echo "podman-compose $("$COMPOSE_VENV/bin/podman-compose" --version 2>/dev/null | head -1): valid"
if command -v docker-compose >/dev/null; then
    grep -v '^name: ' "$WORK/compose.yaml" > "$WORK/compose-v1.yaml"
    (cd "$WORK" && docker-compose -f compose-v1.yaml config -q) && echo "$(docker-compose version --short): valid"
fi

log "images"
pull_or_stand_in() {  # $1 service, $2 variable, $3 official image
    local image
    image=$(grep -E "^$2=" "$WORK/.env" | cut -d= -f2- || true)
    image=${image:-${!2:-$3}}
    if podman image exists "$image" || podman pull -q "$image" >/dev/null 2>&1; then
        echo "$1: $image"
        echo "$2=$image" >> "$WORK/.env"
        return
    fi
    local stand_in=localhost/mnemostore-stand-in-$1:1
    echo "$1: $image cannot be pulled here: stand-in $stand_in (deploy/image/stand-ins)"
    podman image exists "$stand_in" || podman build -q --network=host --volume /etc/ssl/certs:/etc/ssl/certs:ro \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" -f "$ROOT/deploy/image/stand-ins/$1.Containerfile" -t "$stand_in" \
        "$ROOT/deploy/image/stand-ins" >/dev/null
    echo "$2=$stand_in" >> "$WORK/.env"
}
case $BASE_IMAGE in
    localhost/debian-bookworm-python:*) BASE_IMAGE=$BASE_IMAGE bash "$ROOT/deploy/image/build-base.sh" ;;
esac
pull_or_stand_in postgres POSTGRES_IMAGE pgvector/pgvector:pg16
pull_or_stand_in redis REDIS_IMAGE redis:7-alpine
pull_or_stand_in prometheus PROMETHEUS_IMAGE prom/prometheus:v3.5.0
if ! podman image exists "$IMAGE"; then
    IMAGE=$IMAGE EXTRAS=${EXTRAS:-server,postgres,redis,embeddings} TORCH_FIND_LINKS=${TORCH_FIND_LINKS:-/opt/wheels} \
        BASE_IMAGE=$BASE_IMAGE bash "$ROOT/deploy/image/test-image.sh"
fi
echo "mnemostore: $IMAGE"

wait_healthy() {  # run the container's health check until it passes (no systemd here to schedule it)
    local name=$1 limit=$2 i
    for ((i = 0; i < limit * 2; i++)); do
        podman healthcheck run "$name" >/dev/null 2>&1 && { echo "$name: healthy"; return; }
        sleep 0.5
    done
    podman logs "$name" 2>&1 | tail -20 >&2
    die "$name is not healthy after $limit s"
}

log "up, in depends_on order"
started=$(now)
pc up -d --no-deps postgres redis 2>/dev/null >/dev/null
wait_healthy "$(container postgres)" 60
wait_healthy "$(container redis)" 30
pc up -d --no-deps migrate 2>/dev/null >/dev/null
[ "$(podman wait "$(container migrate)")" = 0 ] || { podman logs "$(container migrate)" >&2; die "migrate failed"; }
podman logs "$(container migrate)" 2>&1 | tail -1
pc up -d --no-deps api worker backup 2>/dev/null >/dev/null
wait_healthy "$(container api)" 60
API=http://127.0.0.1:$API_PORT
for _ in $(seq 1 600); do curl -sf -o /dev/null "$API/readyz" && break; sleep 0.1; done
curl -sf -o /dev/null "$API/readyz" || die "/readyz of the stack's API is not 200"
printf 'up to ready (postgres, redis, migrate, api): %.1f s\n' "$(echo "$(now) - $started" | bc)"
pc up -d --no-deps prometheus 2>/dev/null >/dev/null
wait_healthy "$(container prometheus)" 60
wait_healthy "$(container worker)" 120

log "a tenant (the image's CLI in the api container), an append, full-text and semantic search"
podman exec "$(container api)" mnemostore tenant create stack-test >/dev/null
KEY=$(podman exec "$(container api)" mnemostore tenant create-key stack-test bot 2>/dev/null)
J="Content-Type: application/json"
AUTH="Authorization: Bearer $KEY"
USER_ID=$(curl -sSf -X POST "$API/v1/users/resolve" -H "$AUTH" -H "$J" \
    -d '{"channel": "web", "channel_user_id": "u-1", "username": "ada"}' | jq -r .id)
CHAT=$(curl -sSf -X POST "$API/v1/conversations" -H "$AUTH" -H "$J" -d "{\"user_id\": \"$USER_ID\"}" | jq -r .id)
curl -sS --fail-with-body -X POST "$API/v1/conversations/$CHAT/messages" -H "$AUTH" -H "$J" \
    -d '{"role": "user", "content": "Ada is allergic to peanuts"}' >/dev/null
curl -sS --fail-with-body -X POST "$API/v1/search" -H "$AUTH" -H "$J" \
    -d '{"query": "peanuts", "mode": "fulltext", "scope": "messages"}' | jq -e '.items | length >= 1' >/dev/null \
    || die "full-text search found nothing"
echo "full text: found"
for _ in $(seq 1 120); do  # the worker embeds the message (claimed: running; embedded: done)
    [ "$(curl -sSf "$API/v1/indexing" -H "$AUTH" | jq '.pending + .running')" = 0 ] && break
    sleep 0.5
done
semantic=$(curl -sS --fail-with-body -X POST "$API/v1/search" -H "$AUTH" -H "$J" \
    -d '{"query": "what food must she avoid?", "mode": "semantic", "scope": "messages"}')
echo "$semantic" | jq -c '{mode, pending, hits: [.items[] | .content]}'
echo "$semantic" | jq -e '.items[0].content | contains("peanuts")' >/dev/null || die "semantic search missed it"
worker_log=$(podman logs "$(container worker)" 2>&1)
grep "worker: embedding with" <<<"$worker_log" || die "the worker did not say what it embeds with"

log "backups: a verified archive in the backups volume"
for _ in $(seq 1 240); do
    podman exec "$(container backup)" test -e /var/lib/mnemostore/backups/.last-success 2>/dev/null && break
    sleep 0.5
done
podman exec "$(container backup)" ls -l /var/lib/mnemostore/backups
podman logs "$(container backup)" 2>&1 | tail -3
wait_healthy "$(container backup)" 10

log "Prometheus scrapes the API"
for _ in $(seq 1 60); do
    up=$(curl -sSf "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query?query=up%7Bjob%3D%22mnemostore%22%7D" \
        | jq -r '.data.result[0].value[1] // empty')
    [ "$up" = 1 ] && break
    sleep 1
done
[ "${up:-}" = 1 ] || die "Prometheus does not see the API up"
echo "up{job=\"mnemostore\"} = 1"
curl -sSf "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/rules" | jq -r '[.data.groups[].rules[].name] | "alert rules loaded: \(length)"'

log "every service"
podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}\t{{.Status}}'
printf '\nOK: the stack ran (%s)\n' "$PROJECT"
