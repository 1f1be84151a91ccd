#!/bin/sh
# render.sh renders the gateway's nginx configuration into a prefix directory
# and, with --exec, runs nginx from it in the foreground.
#
#   deploy/gateway/render.sh PREFIX          # writes PREFIX/nginx.conf, prints its path
#   deploy/gateway/render.sh --exec PREFIX   # same, then exec nginx -p PREFIX -c PREFIX/nginx.conf
#
# PREFIX must be writable: nginx keeps its pid file and temp directories there,
# so the gateway runs as any non-root user with a read-only root filesystem.
# The same script runs on a developer's machine (make dev), in the end-to-end
# tests, and in the Kubernetes gateway container (mounted from a ConfigMap).
#
# Settings (environment, default in brackets):
#   GATEWAY_PORT                   listen port [3060]
#   GATEWAY_LISTEN_HOST            listen address, an IPv4 or IPv6 literal (make dev: 127.0.0.1)
#                                  [empty: every interface]
#   PERSONAS_INTERNAL_UPSTREAM     host:port of personas-internal [127.0.0.1:3061]
#   PERSONAS_ADMIN_UPSTREAM        host:port of personas-admin [127.0.0.1:3062]
#   MANA_AUTH_UPSTREAM             host:port of mana-auth [127.0.0.1:3001]
#   GATEWAY_INTERNAL_ALLOW         CIDRs or addresses allowed on /api/v1/personas/internal/,
#                                  separated by commas or spaces [empty: allow all]
#   GATEWAY_ACCESS_LOG             JSON access log file; relative paths are under PREFIX
#                                  (/dev/null to drop it) [/dev/stdout]
#   GATEWAY_ERROR_LOG              error log [stderr]
#   GATEWAY_ERROR_LOG_LEVEL        [warn]
#   GATEWAY_CLIENT_MAX_BODY_SIZE   largest request body [28m, personas-internal's own limit: the largest valid batch in its most verbose encoding]
#   GATEWAY_PROXY_CONNECT_TIMEOUT  [5s]
#   GATEWAY_PROXY_TIMEOUT          upstream send and read timeout [30s]
#   GATEWAY_WORKER_PROCESSES       [auto]
#   GATEWAY_DAEMON                 on or off; off keeps nginx in the foreground [off]
#   GATEWAY_TEMPLATE               template to render [nginx.conf.template beside this script]
#   NGINX_BIN                      nginx binary for --exec [nginx]
#
# Only the names above are substituted; nginx's own $variables pass through.
# Values are checked against strict patterns so that no setting can smuggle a
# directive into the configuration.
set -eu

die() {
    printf 'render.sh: %s\n' "$*" >&2
    exit 1
}

exec_nginx=no
if [ "${1:-}" = "--exec" ]; then
    exec_nginx=yes
    shift
fi
[ $# -eq 1 ] || die "usage: render.sh [--exec] PREFIX"
prefix=${1%/}
[ -n "$prefix" ] || prefix=/

GATEWAY_PORT=${GATEWAY_PORT:-3060}
GATEWAY_LISTEN_HOST=${GATEWAY_LISTEN_HOST:-}
PERSONAS_INTERNAL_UPSTREAM=${PERSONAS_INTERNAL_UPSTREAM:-127.0.0.1:3061}
PERSONAS_ADMIN_UPSTREAM=${PERSONAS_ADMIN_UPSTREAM:-127.0.0.1:3062}
MANA_AUTH_UPSTREAM=${MANA_AUTH_UPSTREAM:-127.0.0.1:3001}
GATEWAY_INTERNAL_ALLOW=${GATEWAY_INTERNAL_ALLOW:-}
GATEWAY_ACCESS_LOG=${GATEWAY_ACCESS_LOG:-/dev/stdout}
GATEWAY_ERROR_LOG=${GATEWAY_ERROR_LOG:-stderr}
GATEWAY_ERROR_LOG_LEVEL=${GATEWAY_ERROR_LOG_LEVEL:-warn}
GATEWAY_CLIENT_MAX_BODY_SIZE=${GATEWAY_CLIENT_MAX_BODY_SIZE:-28m}
GATEWAY_PROXY_CONNECT_TIMEOUT=${GATEWAY_PROXY_CONNECT_TIMEOUT:-5s}
GATEWAY_PROXY_TIMEOUT=${GATEWAY_PROXY_TIMEOUT:-30s}
GATEWAY_WORKER_PROCESSES=${GATEWAY_WORKER_PROCESSES:-auto}
GATEWAY_DAEMON=${GATEWAY_DAEMON:-off}
GATEWAY_TEMPLATE=${GATEWAY_TEMPLATE:-$(dirname "$0")/nginx.conf.template}

# check NAME ERE: the value of NAME must match the extended regex ERE whole.
check() {
    eval "value=\${$1}"
    printf '%s\n' "$value" | grep -Eqx -- "$2" || die "$1='$value' is not valid (want $2)"
}

upstream_re='([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}'
path_re='[A-Za-z0-9._/-]+'
size_re='[0-9]+[kKmM]?'
time_re='[0-9]+(ms|s|m)?'
check GATEWAY_PORT '[0-9]{1,5}'
check GATEWAY_LISTEN_HOST '|[0-9.]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*'
check PERSONAS_INTERNAL_UPSTREAM "$upstream_re"
check PERSONAS_ADMIN_UPSTREAM "$upstream_re"
check MANA_AUTH_UPSTREAM "$upstream_re"
check GATEWAY_ACCESS_LOG "$path_re"
check GATEWAY_ERROR_LOG "$path_re|stderr"
check GATEWAY_ERROR_LOG_LEVEL 'debug|info|notice|warn|error|crit|alert|emerg'
check GATEWAY_CLIENT_MAX_BODY_SIZE "$size_re"
check GATEWAY_PROXY_CONNECT_TIMEOUT "$time_re"
check GATEWAY_PROXY_TIMEOUT "$time_re"
check GATEWAY_WORKER_PROCESSES '[1-9][0-9]*|auto'
check GATEWAY_DAEMON 'on|off'
[ -r "$GATEWAY_TEMPLATE" ] || die "template $GATEWAY_TEMPLATE is not readable"

# The access rules of the internal routes: allow each listed network, deny the
# rest; nothing listed means allow all.
indent='            '
rules=''
for cidr in $(printf '%s' "$GATEWAY_INTERNAL_ALLOW" | tr ',' ' '); do
    printf '%s\n' "$cidr" | grep -Eqx -- 'all|[0-9A-Fa-f.:]+(/[0-9]{1,3})?' ||
        die "GATEWAY_INTERNAL_ALLOW entry '$cidr' is not an address, a CIDR or 'all'"
    rules="${rules}${indent}allow $cidr;
"
done
if [ -z "$rules" ]; then
    rules="${indent}allow all;"
else
    rules="${rules}${indent}deny all;"
fi
GATEWAY_INTERNAL_ALLOW_RULES=$rules

# nginx's listen: a port alone, or address:port ([v6]:port).
case $GATEWAY_LISTEN_HOST in
'') GATEWAY_LISTEN=$GATEWAY_PORT ;;
*:*) GATEWAY_LISTEN="[$GATEWAY_LISTEN_HOST]:$GATEWAY_PORT" ;;
*) GATEWAY_LISTEN="$GATEWAY_LISTEN_HOST:$GATEWAY_PORT" ;;
esac

export GATEWAY_LISTEN PERSONAS_INTERNAL_UPSTREAM PERSONAS_ADMIN_UPSTREAM \
    MANA_AUTH_UPSTREAM GATEWAY_INTERNAL_ALLOW_RULES GATEWAY_ACCESS_LOG \
    GATEWAY_ERROR_LOG GATEWAY_ERROR_LOG_LEVEL GATEWAY_CLIENT_MAX_BODY_SIZE \
    GATEWAY_PROXY_CONNECT_TIMEOUT GATEWAY_PROXY_TIMEOUT \
    GATEWAY_WORKER_PROCESSES GATEWAY_DAEMON

mkdir -p "$prefix"
out="$prefix/nginx.conf"
tmp="$out.tmp.$$"
# Literal substitution (index/substr, not gsub: values may hold '&' or '\').
awk '
BEGIN {
    n = split("GATEWAY_LISTEN PERSONAS_INTERNAL_UPSTREAM PERSONAS_ADMIN_UPSTREAM MANA_AUTH_UPSTREAM GATEWAY_INTERNAL_ALLOW_RULES GATEWAY_ACCESS_LOG GATEWAY_ERROR_LOG GATEWAY_ERROR_LOG_LEVEL GATEWAY_CLIENT_MAX_BODY_SIZE GATEWAY_PROXY_CONNECT_TIMEOUT GATEWAY_PROXY_TIMEOUT GATEWAY_WORKER_PROCESSES GATEWAY_DAEMON", names, " ")
}
{
    line = $0
    for (i = 1; i <= n; i++) {
        key = "${" names[i] "}"
        done = ""
        while ((at = index(line, key)) > 0) {
            done = done substr(line, 1, at - 1) ENVIRON[names[i]]
            line = substr(line, at + length(key))
        }
        line = done line
    }
    if (line !~ /^[ \t]*#/ && match(line, /\$\{[A-Z][A-Z0-9_]*\}/)) {
        printf "render.sh: unknown placeholder %s on template line %d\n", substr(line, RSTART, RLENGTH), NR > "/dev/stderr"
        failed = 1
    }
    print line
}
END { exit failed }
' "$GATEWAY_TEMPLATE" >"$tmp" || {
    rm -f "$tmp"
    die "rendering $GATEWAY_TEMPLATE failed"
}
mv "$tmp" "$out"

if [ "$exec_nginx" = yes ]; then
    # -e stderr: Debian's build would otherwise first try /var/log/nginx/error.log.
    nginx_bin=${NGINX_BIN:-nginx}
    # nginx reads NGINX as a list of inherited listening sockets (binary
    # upgrades): never pass it one by accident.
    unset NGINX NGINX_BIN
    exec "$nginx_bin" -e stderr -p "$prefix/" -c "$out"
fi
printf '%s\n' "$out"
