# syntax=docker/dockerfile:1
# personas-gateway: nginx from Debian with the gateway's template and render
# script. Build from the repository root:
#   docker build -f deploy/docker/personas-gateway.Dockerfile -t IMAGE .
# Unlike the Go programs this image keeps /bin/sh: render.sh fills the template
# from the environment at start. In Kubernetes the same two files are mounted
# from a ConfigMap over /etc/personas-gateway.
FROM debian:12.12-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
    && mkdir -p /run/personas-gateway \
    && chown 65532:65532 /run/personas-gateway
COPY deploy/gateway/nginx.conf.template deploy/gateway/render.sh /etc/personas-gateway/
USER 65532:65532
EXPOSE 3060
# nginx finishes open requests on SIGQUIT; SIGTERM would drop them.
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/bin/sh", "/etc/personas-gateway/render.sh", "--exec", "/run/personas-gateway"]
