#!/usr/bin/env bash
# Make sure Debian's PostgreSQL server binaries are on the machine, for the fleet test (tests/test_fleet_server.py),
# which runs Langflow with several workers on PostgreSQL as production fleets do. Idempotent and quick when
# the package is present; the test starts its own server on a free port in a temporary folder.
set -euo pipefail

if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    sudo=""
    [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
fi
