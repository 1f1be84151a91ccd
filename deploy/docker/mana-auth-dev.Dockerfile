# syntax=docker/dockerfile:1
# mana-auth-dev: the development stand-in for mana-auth. Never deployed to
# production: for local clusters and end-to-end runs only.
# Build from the repository root:
#   docker build -f deploy/docker/mana-auth-dev.Dockerfile -t IMAGE .
# (deploy/scripts/images.sh does this for every program.)

# Build stage. GOWORK=off inside the service directory: go.work lists every
# module of the repository, most of which are not in this build context; the
# service's go.mod replaces github.com/mana/personas/pkg with ../../pkg, so
# copying pkg/ beside it is all the module needs.
FROM golang:1.26 AS build
ENV CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false
WORKDIR /src/services/mana-auth-dev
# Module files first: the download layer survives source edits.
COPY pkg/go.mod pkg/go.sum /src/pkg/
COPY services/mana-auth-dev/go.* ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY pkg/ /src/pkg/
COPY services/mana-auth-dev/ ./
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/mana-auth-dev .

# Final stage: a static binary on distroless, no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mana-auth-dev /mana-auth-dev
USER 65532:65532
EXPOSE 3001
ENTRYPOINT ["/mana-auth-dev"]
