#!/usr/bin/env bash
# Register casework's custom search attributes on a self-hosted Temporal cluster.
#
# docker-compose.yml runs this once in the temporal-setup service (temporalio/admin-tools), but it
# works from any machine with the `temporal` CLI:
#
#   TEMPORAL_ADDRESS=localhost:7233 bash deploy/temporal/register-search-attributes.sh
#
# Idempotent: attributes that already exist with the right type are left alone. An attribute
# that exists with a *different* type is an error, since casework's workflows would fail on it.
# Keep the list in step with casework/search_attributes.py.
set -euo pipefail

export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-localhost:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
TIMEOUT_SECONDS="${SETUP_TIMEOUT_SECONDS:-300}"

ATTRIBUTES=(
    CaseType=Keyword
    CaseStatus=Keyword
    ApproverRole=Keyword
    CaseAmount=Double
    CaseRisk=Keyword
)

log() { echo "temporal-setup: $*"; }

# Retry a command quietly until it succeeds or the deadline passes.
wait_for() {
    local what="$1"
    shift
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= TIMEOUT_SECONDS)); then
            log "gave up after ${TIMEOUT_SECONDS}s waiting for ${what}; last attempt said:"
            "$@" || true
            exit 1
        fi
        sleep 2
    done
    log "${what}: ok"
}

server_serving() { temporal operator cluster health | grep -q SERVING; }

# Whether the namespace lists NAME with TYPE (the list prints one "Name Type" row each).
has_attribute() {
    temporal operator search-attribute list --namespace "$NAMESPACE" |
        awk -v name="$1" -v type="$2" '$1 == name && $2 == type { found = 1 } END { exit !found }'
}

log "Temporal at ${TEMPORAL_ADDRESS}, namespace ${NAMESPACE}"
wait_for "server health" server_serving
# temporalio/auto-setup creates the namespace in the background once the server answers.
wait_for "namespace ${NAMESPACE}" temporal operator namespace describe --namespace "$NAMESPACE"
wait_for "search attribute listing" temporal operator search-attribute list --namespace "$NAMESPACE"

for attribute in "${ATTRIBUTES[@]}"; do
    name="${attribute%%=*}"
    type="${attribute#*=}"
    if has_attribute "$name" "$type"; then
        log "${name} (${type}) already registered"
        continue
    fi
    # Some server versions answer "already exists" even when the type matches; what counts is
    # whether the attribute is there afterwards with the right type.
    if ! output="$(temporal operator search-attribute create --namespace "$NAMESPACE" \
        --name "$name" --type "$type" 2>&1)" && ! has_attribute "$name" "$type"; then
        log "could not register ${name} (${type}): ${output}"
        exit 1
    fi
    log "${name} (${type}) registered"
done

for attribute in "${ATTRIBUTES[@]}"; do
    if ! has_attribute "${attribute%%=*}" "${attribute#*=}"; then
        log "${attribute} is still missing after registration"
        exit 1
    fi
done
log "all ${#ATTRIBUTES[@]} search attributes present"
