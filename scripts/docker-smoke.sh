#!/usr/bin/env bash
# Deployment smoke test: build the Docker image, start docker-compose.yml as it is (web, worker, Redis,
# PostgreSQL), upload a CCP photo and a street clip through the API (the clip is analysed by the worker),
# check both results and the trend report, then remove everything it started (`compose down -v`).
#
#   bash scripts/docker-smoke.sh
#
# Needs a Docker daemon: when dockerd is installed but not running, it is started here (as root) and
# stopped again at the end. Needs docker compose or docker-compose, curl and python3. Base images that
# cannot be pulled (no registry reachable) are built here as stand-ins from Debian bookworm packages
# (debootstrap + docker import, as root) under the names the files use: python:3.11-slim, redis:7,
# postgres:15 (Debian's python3 is 3.11, redis-server 7.0, postgresql 15).
#
# Environment (all optional):
#   CLOSETAI_SMOKE_PHOTO, CLOSETAI_SMOKE_CLIP   inputs; default ../shared/data/ccp/photos/0003.jpg and
#                                               ../shared/data/videos/street-clip-b.mp4
#   CLOSETAI_TORCH_INDEX     torch's package index for the build; default the Dockerfile's (PyTorch's CPU
#                            wheels), or PyPI's CUDA build when that index cannot be reached (said so)
#   CLOSETAI_SMOKE_CLIP_TIMEOUT_S   how long the clip may take on the worker (1200)
#   CLOSETAI_DEBIAN_MIRROR   debootstrap's mirror (default: the one apt is configured with)
# Exit status 0 when every check passed; otherwise a line "docker-smoke: FAILED: ..." and status 1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PROJECT=closetai-smoke   # the compose project: never a user's own `closetai` one (down -v deletes volumes)
IMAGE=closetai:smoke
HOSTNAME_ALLOWED=closetai-smoke.test
PHOTO=${CLOSETAI_SMOKE_PHOTO:-$ROOT/../shared/data/ccp/photos/0003.jpg}
CLIP=${CLOSETAI_SMOKE_CLIP:-$ROOT/../shared/data/videos/street-clip-b.mp4}
CLIP_TIMEOUT_S=${CLOSETAI_SMOKE_CLIP_TIMEOUT_S:-1200}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
STAND_IN_MARK="closetai stand-in built from Debian bookworm packages"

say() { echo "docker-smoke: $*"; }
fail() { echo "docker-smoke: FAILED: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/closetai-smoke.XXXXXX")
DOCKERD_PID=""
COMPOSE_STARTED=""
ROOTFS=""

cleanup() {
  local rc=$?
  set +e
  if [ -n "$COMPOSE_STARTED" ]; then
    if [ "$rc" != 0 ]; then
      echo "---- last lines of the containers' logs ----" >&2
      "${COMPOSE[@]}" logs --no-color --tail 40 >&2 2>&1
    fi
    "${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1
  fi
  [ -n "$ROOTFS" ] && rm -rf "$ROOTFS"
  rm -rf "$WORK"
  if [ -n "$DOCKERD_PID" ]; then
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$DOCKERD_PID" 2>/dev/null && kill -KILL "$DOCKERD_PID"
    say "stopped the dockerd this script started"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- inputs and tools ---------------------------------------------------------------------------------
[ -f "$PHOTO" ] || fail "no photo at $PHOTO (set CLOSETAI_SMOKE_PHOTO to a street-fashion JPEG)"
[ -f "$CLIP" ] || fail "no clip at $CLIP (set CLOSETAI_SMOKE_CLIP to a short street clip)"
command -v docker >/dev/null || fail "docker is not installed (Debian: apt-get install docker.io)"
command -v curl >/dev/null || fail "curl is not installed"
command -v python3 >/dev/null || fail "python3 is not installed"

# ---- the daemon ---------------------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || fail "no Docker daemon answers and dockerd is not installed (apt-get install docker.io)"
  [ "$(id -u)" = 0 ] || fail "no Docker daemon answers ($(docker info 2>&1 | grep -m1 -i error)); start it, or run this as root"
  say "starting dockerd (log: /var/log/closetai-smoke-dockerd.log)"
  dockerd >/var/log/closetai-smoke-dockerd.log 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
  docker info >/dev/null 2>&1 || fail "dockerd did not start: $(tail -n 3 /var/log/closetai-smoke-dockerd.log | tr '\n' ' ')"
fi

if docker compose version >/dev/null 2>&1; then
  COMPOSE_BIN=(docker compose)
elif command -v docker-compose >/dev/null; then
  COMPOSE_BIN=(docker-compose)
else
  fail "neither 'docker compose' nor docker-compose is installed (Debian: apt-get install docker-compose)"
fi
COMPOSE=("${COMPOSE_BIN[@]}" -p "$PROJECT" -f "$ROOT/docker-compose.yml")
say "compose: $("${COMPOSE_BIN[@]}" version 2>/dev/null | head -n 1)"

# RUN --mount (the build secret, pip's cache) needs BuildKit: the buildx plugin, or a Docker client older
# than 23, which has BuildKit built in. Debian's docker.io 20.10 is the latter.
BUILD=()
if docker buildx version >/dev/null 2>&1; then
  BUILD=(docker build)
else
  for client in $(type -ap docker) /usr/bin/docker; do
    version=$("$client" version --format '{{.Client.Version}}' 2>/dev/null || true)
    if [ -n "$version" ] && [ "${version%%.*}" -lt 23 ] 2>/dev/null; then
      BUILD=(env DOCKER_BUILDKIT=1 "$client" build)
      break
    fi
  done
fi
[ ${#BUILD[@]} -gt 0 ] || fail "building needs BuildKit: install the docker buildx plugin"

# ---- base images: pulled, or stand-ins from Debian packages -------------------------------------------
debian_mirror() {
  if [ -n "${CLOSETAI_DEBIAN_MIRROR:-}" ]; then echo "$CLOSETAI_DEBIAN_MIRROR"; return; fi
  local m
  # deb822 sources (Debian 12+), then one-line sources; the first Debian archive that is not -security.
  m=$(awk 'BEGIN { RS = ""; FS = "\n" }
           /(^|\n)Types:[^\n]*deb/ && !/Suites:[^\n]*-security/ {
             for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, u, /[ \t]+/); print u[2]; exit } }' \
      /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
  [ -n "$m" ] || m=$(grep -h -E '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                      | grep -v -- -security | sed -E 's/\[[^]]*\]//' | awk '{ print $2; exit }')
  echo "${m:-http://deb.debian.org/debian}"
}

# stand_in NAME PACKAGES: a minimal bookworm with PACKAGES; then the caller's hook adjusts $ROOTFS.
stand_in_rootfs() {
  command -v debootstrap >/dev/null || fail "$1 cannot be pulled and debootstrap is not installed (apt-get install debootstrap)"
  [ "$(id -u)" = 0 ] || fail "$1 cannot be pulled; building a stand-in needs root (debootstrap)"
  ROOTFS=$(mktemp -d /var/tmp/closetai-standin.XXXXXX)
  local mirror log="$WORK/debootstrap.log"
  mirror=$(debian_mirror)
  debootstrap --variant=minbase --include="$2" bookworm "$ROOTFS" "$mirror" >"$log" 2>&1 \
    || fail "debootstrap of $1's stand-in from $mirror failed: $(tail -n 2 "$log" | tr '\n' ' ')"
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
}

stand_in_import() {  # NAME CHANGES...: the rootfs as one layer, with Dockerfile-like settings
  local name=$1; shift
  local changes=() c
  for c in "$@"; do changes+=(--change "$c"); done
  tar -C "$ROOTFS" -c . | docker import -m "$STAND_IN_MARK" "${changes[@]}" - "$name" >/dev/null \
    || fail "docker import of $name's stand-in failed"
  rm -rf "$ROOTFS"; ROOTFS=""
}

BASE_PATH="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

stand_in_python() {  # like python:3.11-slim: python3 (3.11) that can make a venv, `python` on PATH
  stand_in_rootfs "$1" python3,python3-venv,ca-certificates
  ln -s /usr/bin/python3 "$ROOTFS/usr/local/bin/python"
  stand_in_import "$1" "ENV $BASE_PATH" "ENV LANG=C.UTF-8" 'CMD ["python3"]'
}

stand_in_redis() {  # like redis:7: redis-server as user redis in /data, listening for other containers
  stand_in_rootfs "$1" redis-server
  cat >"$ROOTFS/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# Stand-in for the redis image's entrypoint. That image's redis-server is built with protected mode off
# (it serves other containers without a password); Debian's refuses them unless told so.
set -e
if [ "$1" = redis-server ]; then
  shift
  set -- redis-server --protected-mode no "$@"
  if [ "$(id -u)" = 0 ]; then
    chown -R redis:redis .
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
EOF
  chmod 755 "$ROOTFS/usr/local/bin/docker-entrypoint.sh"
  mkdir -p "$ROOTFS/data"
  stand_in_import "$1" "ENV $BASE_PATH" "WORKDIR /data" "EXPOSE 6379" \
    'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["redis-server"]'
}

stand_in_postgres() {  # like postgres:15: a cluster in $PGDATA from POSTGRES_USER/_PASSWORD/_DB on first start
  stand_in_rootfs "$1" postgresql-15
  rm -rf "$ROOTFS/var/lib/postgresql/15" "$ROOTFS/etc/postgresql/15"  # Debian's default cluster
  cat >"$ROOTFS/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# Stand-in for the postgres image's entrypoint: on the first start, a cluster in $PGDATA whose superuser
# is $POSTGRES_USER with $POSTGRES_PASSWORD (scram-sha-256 over TCP, trust on the local socket) and a
# database $POSTGRES_DB; then the server on all interfaces, as user postgres.
set -e
if [ "$1" = postgres ]; then
  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
  fi
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?the postgres stand-in needs POSTGRES_PASSWORD}"
    user=${POSTGRES_USER:-postgres}
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    db=${POSTGRES_DB:-$user}
    if [ "$db" != postgres ]; then
      echo "CREATE DATABASE \"$db\" OWNER \"$user\";" | postgres --single -D "$PGDATA" postgres >/dev/null
    fi
  fi
  shift
  exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"
EOF
  chmod 755 "$ROOTFS/usr/local/bin/docker-entrypoint.sh"
  stand_in_import "$1" "ENV PATH=/usr/lib/postgresql/15/bin:${BASE_PATH#PATH=}" "ENV LANG=C.UTF-8" \
    "ENV PGDATA=/var/lib/postgresql/data" "EXPOSE 5432" 'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["postgres"]'
}

ensure_image() {  # NAME BUILDER: the local image, else a pull, else a stand-in
  local name=$1 builder=$2 started
  if docker image inspect "$name" >/dev/null 2>&1; then
    if [ "$(docker image inspect -f '{{.Comment}}' "$name")" = "$STAND_IN_MARK" ]; then
      say "$name: the local stand-in (built from Debian packages by an earlier run)"
    else
      say "$name: local image"
    fi
    return
  fi
  if docker pull -q "$name" >/dev/null 2>"$WORK/pull.log"; then
    say "$name: pulled"
    return
  fi
  started=$(now)
  say "$name cannot be pulled ($(head -n 1 "$WORK/pull.log" | cut -c1-120)); building a stand-in from Debian packages"
  "$builder" "$name"
  say "$name: stand-in built in $(since "$started") s"
}

T0=$(now)
ensure_image python:3.11-slim stand_in_python
ensure_image "${CLOSETAI_REDIS_IMAGE:-redis:7}" stand_in_redis
ensure_image "${CLOSETAI_POSTGRES_IMAGE:-postgres:15}" stand_in_postgres
T_BASES=$(since "$T0")

# ---- the project's image ------------------------------------------------------------------------------
BUILD_ARGS=()
DEFAULT_INDEX=$(sed -nE 's/^ARG TORCH_INDEX=(.*)$/\1/p' Dockerfile | head -n 1)
TORCH_INDEX=${CLOSETAI_TORCH_INDEX:-}
if [ -z "$TORCH_INDEX" ] && ! curl -fsS -o /dev/null --max-time 20 "${DEFAULT_INDEX%/}/torch/" 2>/dev/null; then
  TORCH_INDEX=https://pypi.org/simple
  say "NOTE: $DEFAULT_INDEX (the CPU-only torch the image has for users) cannot be reached from here:" \
      "building with torch from PyPI instead, the CUDA build with its NVIDIA libraries"
fi
[ -n "$TORCH_INDEX" ] && BUILD_ARGS+=(--build-arg "TORCH_INDEX=$TORCH_INDEX")
# pip in the build verifies HTTPS with this machine's CA bundle (a proxy may re-sign it); as a build
# secret it is mounted for that step only and is not in the image.
[ -s "$CA_BUNDLE" ] && BUILD_ARGS+=(--secret "id=ca,src=$CA_BUNDLE")

OLD_ID=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
say "building $IMAGE (${BUILD[*]} ...; torch from ${TORCH_INDEX:-$DEFAULT_INDEX})"
T0=$(now)
"${BUILD[@]}" --progress=plain "${BUILD_ARGS[@]}" -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
  || { grep -E 'ERROR|[Ee]rror:' "$WORK/build.log" | cut -c1-300 | tail -n 8 >&2; fail "docker build failed (its errors above)"; }
T_BUILD=$(since "$T0")
say "built in $T_BUILD s"
NEW_ID=$(docker image inspect -f '{{.Id}}' "$IMAGE")
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$NEW_ID" ] && [ -z "$(docker image inspect -f '{{join .RepoTags ","}}' "$OLD_ID" 2>/dev/null)" ]; then
  docker rmi "$OLD_ID" >/dev/null 2>&1 || true  # the previous smoke image, now untagged
fi
grep -m1 -E '^#[0-9]+ [0-9.]+ torch [^ ]+ torchvision' "$WORK/build.log" | sed -E 's/^#[0-9]+ [0-9.]+ /docker-smoke: in the image: /' || true
SIZE_MB=$(( $(docker image inspect -f '{{.Size}}' "$IMAGE") / 1000000 ))
# The CA bundle was a build secret: it must not have reached a layer.
NVIDIA_MB=$(docker run --rm --entrypoint sh "$IMAGE" -c 'test ! -e /run/secrets/ca &&
  du -smc /opt/venv/lib/python3*/site-packages/nvidia /opt/venv/lib/python3*/site-packages/triton 2>/dev/null | tail -n 1 | cut -f1') \
  || fail "the image holds /run/secrets/ca: the build secret leaked into a layer"

# ---- compose up ---------------------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(20))')
SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
DB_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
# Access control on, as on any server whose port is reachable from elsewhere.
export CLOSETAI_IMAGE=$IMAGE CLOSETAI_PUBLISH=127.0.0.1:$PORT CLOSETAI_ALLOWED_HOSTS=$HOSTNAME_ALLOWED \
       CLOSETAI_API_TOKENS=$TOKEN CLOSETAI_SECRET_KEY=$SECRET_KEY CLOSETAI_DB_PASSWORD=$DB_PASSWORD
"${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1 || true  # leftovers of an interrupted run
say "docker-compose.yml up (project $PROJECT, web on 127.0.0.1:$PORT, answering $HOSTNAME_ALLOWED, API token on)"
T0=$(now)
COMPOSE_STARTED=1
"${COMPOSE[@]}" up -d --no-build >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "compose up failed"; }

health_of() {  # container id -> its health (or state when it has no health check)
  docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}} {{.State.Status}} {{.RestartCount}}' "$1"
}
deadline=$(( $(date +%s) + ${CLOSETAI_SMOKE_START_TIMEOUT_S:-600} ))
while :; do
  waiting=()
  for service in postgres redis web worker; do
    cid=$("${COMPOSE[@]}" ps -q "$service")
    [ -n "$cid" ] || fail "compose started no $service container"
    read -r health state restarts <<<"$(health_of "$cid")"
    if [ "$state" = exited ] || [ "$restarts" -gt 0 ]; then
      "${COMPOSE[@]}" logs --no-color --tail 30 "$service" >&2
      fail "$service stopped (state $state, $restarts restarts; its log above)"
    fi
    [ "$health" = healthy ] || waiting+=("$service:$health")
  done
  [ ${#waiting[@]} -eq 0 ] && break
  [ "$(date +%s)" -lt "$deadline" ] || fail "not healthy in time: ${waiting[*]}"
  sleep 2
done
T_START=$(since "$T0")
say "all four services healthy after $T_START s"

# ---- through the API ----------------------------------------------------------------------------------
python3 - "http://127.0.0.1:$PORT" "$HOSTNAME_ALLOWED:$PORT" "$TOKEN" "$PHOTO" "$CLIP" "$CLIP_TIMEOUT_S" "$WORK/results" <<'PY'
import http.client
import json
import mimetypes
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

base, host, token, photo, clip, clip_timeout, results = sys.argv[1:]
server = urlsplit(base)


def fail(message):
    print(f"docker-smoke: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def call(method, path, body=None, content_type=None, auth=True, host_header=host):
    headers = {"Host": host_header}
    if auth:
        headers["Authorization"] = f"Bearer {token}"
    if content_type:
        headers["Content-Type"] = content_type
    conn = http.client.HTTPConnection(server.hostname, server.port, timeout=300)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    except OSError as exc:
        fail(f"{method} {path}: {exc}")
    finally:
        conn.close()


def as_json(status, ctype, data, what):
    try:
        return json.loads(data)
    except ValueError:
        fail(f"{what}: HTTP {status} {ctype}, not JSON: {data[:200]!r}")


def multipart(path, **fields):
    boundary = uuid.uuid4().hex
    out = b""
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    out += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n").encode() + path.read_bytes() + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def expect(status, ctype, data, want, what):
    if status != want:
        fail(f"{what}: HTTP {status}, expected {want}: {data[:300].decode('utf-8', 'replace')}")


# The server answers its configured name only, and the API only with the token.
status, ctype, data = call("GET", "/api/v1/health")
expect(status, ctype, data, 200, "GET /api/v1/health")
health = as_json(status, ctype, data, "health")
classes = set(health.get("classes") or [])
if not classes:
    fail(f"health names no classes: {health}")
print(f"docker-smoke: model {health.get('model')} ({len(classes)} classes) on {health.get('device')}")
status, ctype, data = call("GET", "/api/v1/health", host_header=f"127.0.0.1:{server.port}")
if status != 400 or b"unknown host" not in data:
    fail(f"a Host outside CLOSETAI_ALLOWED_HOSTS got HTTP {status}, not 400 'unknown host'")
body, ctype = multipart(Path(photo), source="docker-smoke")
status, _, data = call("POST", "/api/v1/analyses", body, ctype, auth=False)
if status != 401:
    fail(f"an upload without the API token got HTTP {status}, not 401")

# A photo: analysed by the web container's model.
started = time.perf_counter()
status, rtype, data = call("POST", "/api/v1/analyses", body, ctype)
photo_s = time.perf_counter() - started
expect(status, rtype, data, 201, "POST /api/v1/analyses (photo)")
analysis = as_json(status, rtype, data, "photo analysis")
dets = analysis.get("detections") or []
if not dets:
    fail(f"no garment found in {photo}: {str(analysis)[:300]}")
for d in dets:
    if d["label"] not in classes or not 0 < d["score"] <= 1 or len(d["box"]) != 4:
        fail(f"bad detection {str(d)[:200]}")
    if d["mask"]["size"] != [analysis["height"], analysis["width"]] or not d["mask"]["counts"]:
        fail(f"mask size {d['mask']['size']} is not the photo's {analysis['height']}x{analysis['width']}")
status, rtype, data = call("GET", analysis["urls"]["self"])
expect(status, rtype, data, 200, "GET the stored analysis")
if len(as_json(status, rtype, data, "stored analysis")["detections"]) != len(dets):
    fail("the stored analysis has other detections than the upload's answer")
status, rtype, data = call("GET", analysis["urls"]["annotated"])
if status != 200 or not rtype.startswith("image/") or len(data) < 1000:
    fail(f"annotated photo: HTTP {status} {rtype}, {len(data)} bytes")
labels = ", ".join(sorted(d["label"] for d in dets))
print(f"docker-smoke: photo {Path(photo).name}: {len(dets)} garments ({labels}) in {photo_s:.1f} s")

# A clip: queued by the web container, analysed by a worker container, served by the web again.
body, ctype = multipart(Path(clip), source="docker-smoke")
started = time.perf_counter()
status, rtype, data = call("POST", "/api/v1/videos", body, ctype)
expect(status, rtype, data, 202, "POST /api/v1/videos")
job = as_json(status, rtype, data, "video job")
last_print = 0.0
while True:
    status, rtype, data = call("GET", job["status_url"])
    expect(status, rtype, data, 200, "GET the job status")
    state = as_json(status, rtype, data, "job status")
    elapsed = time.perf_counter() - started
    if state["status"] == "done":
        break
    if state["status"] == "failed":
        fail(f"the clip's job failed: {state.get('error')}")
    if elapsed > float(clip_timeout):
        fail(f"the clip was not analysed within {clip_timeout} s: {state}")
    if elapsed - last_print >= 20:
        print(f"docker-smoke:   clip {state['status']}: {state['stage']}, {state['done']}/{state['total']} frames, {elapsed:.0f} s")
        last_print = elapsed
    time.sleep(2)
clip_s = time.perf_counter() - started
status, rtype, data = call("GET", job["video_url"])
expect(status, rtype, data, 200, "GET /api/v1/videos/<id>")
video = as_json(status, rtype, data, "video result")
tracks = video.get("tracks") or []
if not tracks or not video.get("complete"):
    fail(f"the clip's result has {len(tracks)} tracks, complete={video.get('complete')}: {video.get('error')}")
for t in tracks:
    if t.get("label") not in classes:
        fail(f"track with a label outside the model's classes: {str(t)[:200]}")
status, rtype, data = call("GET", video["urls"]["annotated"])
if status != 200 or rtype != "video/mp4" or data[4:8] != b"ftyp":
    fail(f"annotated video: HTTP {status} {rtype}, {len(data)} bytes")
counts = {}
for t in tracks:
    counts[t["label"]] = counts.get(t["label"], 0) + 1
summary = ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))
print(f"docker-smoke: clip {Path(clip).name}: {len(tracks)} tracks ({summary}), "
      f"annotated video {len(data) / 1e6:.1f} MB, in {clip_s:.1f} s")

# The trend report counts both: the photo's garments and the clip's tracks.
status, rtype, data = call("GET", "/report.json?source=docker-smoke")
expect(status, rtype, data, 200, "GET /report.json")
report = as_json(status, rtype, data, "report")
if report["analyses"] != 2 or report["garments"] != len(dets) + len(tracks):
    fail(f"report.json counts {report['analyses']} analyses and {report['garments']} garments, "
         f"expected 2 and {len(dets)} + {len(tracks)}")
status, rtype, data = call("GET", "/report?source=docker-smoke")
if status != 200 or b"<svg" not in data:
    fail(f"/report: HTTP {status}, {'a' if b'<svg' in data else 'no'} chart")
print(f"docker-smoke: report: {report['analyses']} analyses, {report['garments']} garments, charts drawn")
Path(results).write_text(json.dumps({"photo_s": round(photo_s, 1), "clip_s": round(clip_s, 1),
                                     "job_id": job["job_id"]}))
PY

JOB_ID=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["job_id"])' "$WORK/results")
# Which container ran the clip: the job records its worker's host name (closetai.jobs.runner).
RAN_ON=$("${COMPOSE[@]}" exec -T postgres psql -U closetai -d closetai -tAc "SELECT params FROM jobs WHERE id = $JOB_ID" \
         | python3 -c 'import json, sys; print((json.load(sys.stdin).get("worker") or {}).get("host", ""))')
WORKER_HOST=$(docker inspect -f '{{.Config.Hostname}}' "$("${COMPOSE[@]}" ps -q worker)")
[ "$RAN_ON" = "$WORKER_HOST" ] || fail "the clip ran on '$RAN_ON', not on the worker container ($WORKER_HOST)"
say "the clip ran on the worker container ($WORKER_HOST)"

# ---- compose down -v ----------------------------------------------------------------------------------
"${COMPOSE[@]}" down -v --remove-orphans >"$WORK/down.log" 2>&1 || { cat "$WORK/down.log" >&2; fail "compose down failed"; }
COMPOSE_STARTED=""
left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT"; \
       docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
[ -z "$left" ] || fail "compose down -v left containers or volumes: $(tr "\n" " " <<<"$left")"

read -r PHOTO_S CLIP_S < <(python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["photo_s"], r["clip_s"])' "$WORK/results")
say "PASSED. timings: base images ${T_BASES} s, build ${T_BUILD} s, start ${T_START} s, photo ${PHOTO_S} s, clip ${CLIP_S} s (on the worker); image $IMAGE ${SIZE_MB} MB, of which NVIDIA/CUDA libraries ${NVIDIA_MB:-0} MB"
