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
# chalice itself, polling AWS every second instead of every 5 s (same patience): infra/chalice_cli.py
CHALICE_RUN=("$PY" "$ROOT/infra/chalice_cli.py")
BUILD="$ROOT/build/deploy/$STAGE"

die() { echo "$TOOL: error: $*" >&2; exit 1; }
step() { echo "$TOOL: $* (+${SECONDS} s)" >&2; }  # +N s: since the tool started (where a slow deploy spends its time)

# EMULATED=1: the stage lives in LocalStack at AWS_ENDPOINT_URL, never in an AWS account.
EMULATED=0
case "$STAGE" in
  dev|prod) ;;
  lsdeploy) EMULATED=1 ;;
  *) die "STAGE must be dev, prod (AWS) or lsdeploy (LocalStack) (got '$STAGE'); 'local' is the emulator: make demo" ;;
esac
# The aws CLI: the venv's (awscli is in requirements-dev.txt, so a fresh clone's `make deploy` has
# it), else one on PATH.
if [ -x "$ROOT/.venv/bin/aws" ]; then export PATH="$ROOT/.venv/bin:$PATH"; fi
# With the venv's CLI, every aws command runs through infra/aws_cli.py: the same CLI, its CloudFormation
# waits polling every 5 s instead of every 30 s (a 3 s stack update cost 30 s), with the same patience.
if "$PY" -c 'import awscli' 2>/dev/null; then aws() { "$PY" "$ROOT/infra/aws_cli.py" "$@"; }; fi
command -v aws >/dev/null || die "aws CLI not found -- run: make deps (installs awscli into .venv), or pip install awscli"
if [ "$EMULATED" = 1 ]; then
  [ -n "${AWS_ENDPOINT_URL:-}" ] || die "stage $STAGE deploys into LocalStack: export AWS_ENDPOINT_URL (python -m devtools.localstack_executor serve prints it)"
  curl -fsS --max-time 5 "$AWS_ENDPOINT_URL/_localstack/health" >/dev/null 2>&1 \
    || die "no LocalStack answers at AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL (GET /_localstack/health failed)"
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
  REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
else
  REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}
  # A leftover emulator endpoint, also a per-service one (AWS_ENDPOINT_URL_DYNAMODB=... from a test
  # shell), would send real-AWS calls into the emulator.
  for var in $(compgen -e | grep -E '^AWS_ENDPOINT_URL(_|$)' || true); do unset "$var"; done
fi
[ -n "$REGION" ] || die "no AWS region -- export AWS_REGION=us-east-1 (or your region)"
export AWS_DEFAULT_REGION="$REGION" AWS_REGION="$REGION"
