#!/usr/bin/env bash
# Build every image the project runs from Debian packages, for machines that reach no image
# registry: a Debian base (debootstrap), PostgreSQL, RabbitMQ and the service image.
#
#   deploy/images/build.sh [base|postgres|rabbitmq|service|all]...   (default: all)
#
# The PostgreSQL and RabbitMQ images honour the official images' environment variables, so
# compose and testcontainers use them unchanged; see deploy/images/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_IMAGE="${TILBAKE_BASE_IMAGE:-tilbake/debian:$SUITE}"
POSTGRES_IMAGE="${TILBAKE_POSTGRES_IMAGE:-tilbake/postgres:15}"
RABBITMQ_IMAGE="${TILBAKE_RABBITMQ_IMAGE:-tilbake/rabbitmq:3}"
SERVICE_IMAGE="${TILBAKE_SERVICE_IMAGE:-tilbake/service:dev}"
# CA certificates the build must trust beyond Debian's own (a TLS-intercepting proxy's, say).
EXTRA_CA_FILE="${TILBAKE_EXTRA_CA_FILE:-}"

log() { printf '[images] %s\n' "$*" >&2; }

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
  if have_image "$BASE_IMAGE" && [ -z "${TILBAKE_REBUILD_BASE:-}" ]; then
    log "$BASE_IMAGE exists"
    return
  fi
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  local root
  root="$(mktemp -d /var/tmp/tilbake-rootfs.XXXXXX)"
  trap 'rm -rf "$root"' RETURN
  log "debootstrap $SUITE from $MIRROR"
  debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >/dev/null
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | docker import \
    -c 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
  log "built $BASE_IMAGE"
}

# The extra CA certificates as PEM text: the given file, or else the certificates in the host's
# bundle that Debian's ca-certificates package does not ship (an intercepting proxy's CA).
extra_ca_pem() {
  if [ -n "$EXTRA_CA_FILE" ]; then
    cat "$EXTRA_CA_FILE"
    return
  fi
  python3 deploy/images/extra_ca.py
}

build_postgres() {
  log "building $POSTGRES_IMAGE"
  docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$POSTGRES_IMAGE" deploy/images/postgres >/dev/null
}

build_rabbitmq() {
  log "building $RABBITMQ_IMAGE"
  docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$RABBITMQ_IMAGE" deploy/images/rabbitmq >/dev/null
}

build_service() {
  log "building $SERVICE_IMAGE"
  docker build -q -f deploy/Dockerfile \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg EXTRA_CA_CERTS="$(extra_ca_pem)" \
    -t "$SERVICE_IMAGE" . >/dev/null
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(all)
for target in "${targets[@]}"; do
  case "$target" in
    base) build_base ;;
    postgres) build_base; build_postgres ;;
    rabbitmq) build_base; build_rabbitmq ;;
    service) build_base; build_service ;;
    all) build_base; build_postgres; build_rabbitmq; build_service ;;
    *) log "unknown target: $target (base, postgres, rabbitmq, service, all)"; exit 2 ;;
  esac
done
