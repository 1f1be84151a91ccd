#!/usr/bin/env bash
# images.sh builds the container images (what `make images` runs).
#
#   deploy/scripts/images.sh                    # every image
#   deploy/scripts/images.sh personas-admin     # only the named ones
#
# Environment:
#   REGISTRY  image name prefix              [ghcr.io/mana]
#   VERSION   tag                            [contents of deploy/VERSION]
#   PUSH      1 to push after building       [0]
#   PLATFORM  e.g. linux/amd64,linux/arm64 (needs buildx for several) [engine default]
#   DOCKER    the docker CLI                 [docker]
#
# Every build uses the repository root as its context and one Dockerfile from
# deploy/docker/; BuildKit reads <name>.Dockerfile.dockerignore beside it, so
# each context holds only what that image needs. The Kubernetes overlays pin
# the same tags (a test checks they equal deploy/VERSION).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
REGISTRY=${REGISTRY:-ghcr.io/mana}
VERSION=${VERSION:-$(tr -d '[:space:]' <"$root/deploy/VERSION")}
PUSH=${PUSH:-0}
DOCKER=${DOCKER:-docker}

all=(personas-internal personas-admin personas-gateway personasctl mana-auth-dev)
images=("$@")
[ ${#images[@]} -gt 0 ] || images=("${all[@]}")

if ! command -v "$DOCKER" >/dev/null 2>&1; then
  echo "images.sh: '$DOCKER' not found: building images needs Docker with BuildKit (or set DOCKER)" >&2
  exit 1
fi
case $VERSION in
  "" | latest) echo "images.sh: VERSION must be a fixed tag, got '$VERSION'" >&2; exit 1 ;;
esac

for name in "${images[@]}"; do
  dockerfile=$root/deploy/docker/$name.Dockerfile
  [ -f "$dockerfile" ] || { echo "images.sh: no $dockerfile (known: ${all[*]})" >&2; exit 1; }
  ref=$REGISTRY/$name:$VERSION
  args=(build --file "$dockerfile" --tag "$ref")
  [ -z "${PLATFORM:-}" ] || args+=(--platform "$PLATFORM")
  echo "images.sh: building $ref" >&2
  DOCKER_BUILDKIT=1 "$DOCKER" "${args[@]}" "$root"
  if [ "$PUSH" = 1 ]; then
    "$DOCKER" push "$ref"
  fi
done
