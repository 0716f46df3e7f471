#!/bin/sh
# Create casework's namespace if it is missing and register casework's custom search attributes
# on a self-hosted Temporal cluster.
#
# docker-compose.yml runs this once in the temporal-setup service (temporalio/admin-tools, after
# temporal-schema has set up the database and the server answers), but it works from any machine
# with the `temporal` CLI:
#
#   TEMPORAL_ADDRESS=localhost:7233 sh deploy/temporal/register-search-attributes.sh
#
# POSIX sh, since the admin-tools image has no bash. Idempotent: an existing namespace keeps its
# settings, and attributes that already exist with the right type are left alone. An attribute
# that exists with a *different* type is an error, since casework's workflows would fail on it.
# Keep the list in step with casework/search_attributes.py (tests/test_compose.py checks it).
set -eu

export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-localhost:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
# How long Temporal keeps a closed case's history, and with it the audit trail. Only used when
# the namespace is created here.
RETENTION="${TEMPORAL_NAMESPACE_RETENTION:-720h}"
TIMEOUT_SECONDS="${SETUP_TIMEOUT_SECONDS:-300}"
DEADLINE=$(($(date +%s) + TIMEOUT_SECONDS))

# NAME=TYPE, separated by white space.
ATTRIBUTES="
    CaseType=Keyword
    CaseStatus=Keyword
    ApproverRole=Keyword
    CaseAmount=Double
    CaseRisk=Keyword
"

log() { echo "temporal-setup: $*"; }

# Retry a command quietly until it succeeds or the deadline passes.
wait_for() {
    what="$1"
    shift
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$DEADLINE" ]; then
            log "gave up after ${TIMEOUT_SECONDS}s waiting for ${what}; last attempt said:"
            "$@" || true
            exit 1
        fi
        sleep 2
    done
    log "${what}: ok"
}

server_serving() { temporal operator cluster health | grep -q SERVING; }

namespace_exists() { temporal operator namespace describe --namespace "$NAMESPACE"; }

# The type NAME is registered with in the namespace, or nothing (the list prints "Name Type" rows).
attribute_type() {
    temporal operator search-attribute list --namespace "$NAMESPACE" 2>/dev/null |
        awk -v name="$1" '$1 == name { print $2 }'
}

# Register NAME as TYPE; succeeds once it is there with that type. Another run may have created
# it in the meantime, so a failed create alone proves nothing.
register() {
    temporal operator search-attribute create --namespace "$NAMESPACE" --name "$1" --type "$2" ||
        true
    [ "$(attribute_type "$1")" = "$2" ]
}

log "Temporal at ${TEMPORAL_ADDRESS}, namespace ${NAMESPACE}"
wait_for "server health" server_serving

if namespace_exists >/dev/null 2>&1; then
    log "namespace ${NAMESPACE} exists"
elif temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION"; then
    log "namespace ${NAMESPACE} created, retention ${RETENTION}"
fi
# A new namespace reaches every frontend after a few seconds.
wait_for "namespace ${NAMESPACE}" namespace_exists
wait_for "search attribute listing" temporal operator search-attribute list --namespace "$NAMESPACE"

count=0
for attribute in $ATTRIBUTES; do
    name="${attribute%%=*}"
    type="${attribute#*=}"
    count=$((count + 1))
    registered="$(attribute_type "$name")"
    if [ "$registered" = "$type" ]; then
        log "${name} (${type}) already registered"
        continue
    fi
    if [ -n "$registered" ]; then
        log "${name} is registered as ${registered}, but casework needs ${type}: use another" \
            "namespace, or remove the attribute if nothing uses it"
        exit 1
    fi
    wait_for "${name} (${type}) registered" register "$name" "$type"
done
log "all ${count} search attributes present"
