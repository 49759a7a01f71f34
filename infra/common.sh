# Shared preamble of infra/deploy.sh and infra/destroy.sh (sourced, not run): names, checks, region.
# The caller sets TOOL (its name in messages) before sourcing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
STAGE=${STAGE:-prod}
APP=slipstream
STACK="$APP-$STAGE"
PY="$ROOT/.venv/bin/python"
CHALICE="$ROOT/.venv/bin/chalice"
BUILD="$ROOT/build/deploy/$STAGE"

die() { echo "$TOOL: error: $*" >&2; exit 1; }
step() { echo "$TOOL: $*" >&2; }

case "$STAGE" in dev|prod) ;; *) die "STAGE must be dev or prod (got '$STAGE'); 'local' is the emulator: make demo" ;; esac
command -v aws >/dev/null || die "aws CLI not found -- install with: pip install awscli"
REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}
[ -n "$REGION" ] || die "no AWS region -- export AWS_REGION=us-east-1 (or your region)"
export AWS_DEFAULT_REGION="$REGION" AWS_REGION="$REGION"
unset AWS_ENDPOINT_URL  # a leftover emulator endpoint would send real-AWS calls into the emulator
