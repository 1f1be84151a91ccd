# syntax=docker/dockerfile:1
# personas-admin: the admin API. Build from the repository root:
#   docker build -f deploy/docker/personas-admin.Dockerfile -t IMAGE .
# (deploy/scripts/images.sh does this for every program.)

# Build stage. GOWORK=off inside the service directory: go.work lists every
# module of the repository, most of which are not in this build context; the
# service's go.mod replaces github.com/mana/personas/pkg with ../../pkg, so
# copying pkg/ beside it is what the program needs. Its tests also import the
# mana-auth stand-in (replaced by ../mana-auth-dev): the binary does not, but
# go mod download reads every replaced module's go.mod, so that go.mod (and
# go.sum) is copied, never its source.
# Dashboard stage: the TypeScript UI, built from its lockfile. The Go build
# embeds ui/dist (see services/personas-admin/ui.go), so the image always
# carries the UI of its own commit.
FROM node:20.19-slim AS ui
WORKDIR /ui
COPY services/personas-admin/ui/package.json services/personas-admin/ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY services/personas-admin/ui/ ./
RUN npm run build

FROM golang:1.26 AS build
ENV CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false
WORKDIR /src/services/personas-admin
# Module files first: the download layer survives source edits.
COPY pkg/go.mod pkg/go.sum /src/pkg/
COPY services/mana-auth-dev/go.mod services/mana-auth-dev/go.sum /src/services/mana-auth-dev/
COPY services/personas-admin/go.* ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY pkg/ /src/pkg/
COPY services/personas-admin/ ./
COPY --from=ui /ui/dist ./ui/dist
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/personas-admin .

# Final stage: a static binary on distroless, no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/personas-admin /personas-admin
USER 65532:65532
EXPOSE 3062
ENTRYPOINT ["/personas-admin"]
