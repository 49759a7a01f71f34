#!/usr/bin/env bash
# make deploy STAGE=prod: (1) create/update the stateful stack, (2) chalice deploy the functions and
# API with the stack's names, (3) wire the state machine to the deployed lifecycle function.
# Needs AWS credentials in the environment (or a profile) and a region. See docs/deploy.md.
TOOL=deploy
# shellcheck source=infra/common.sh
source "$(dirname "$0")/common.sh"
[ -x "$CHALICE" ] || die "chalice not installed -- run: make deps"
ACCOUNT=$(aws sts get-caller-identity --query Account --output text) || die "no AWS credentials (aws sts get-caller-identity failed)"
step "account $ACCOUNT, region $REGION, stack $STACK"

mkdir -p "$BUILD"
"$ROOT/.venv/bin/cfn-lint" infra/template.yaml || die "cfn-lint failed on infra/template.yaml"

# The ASL file is uploaded by `cloudformation package`, which needs a bucket for artifacts.
ARTIFACTS="$APP-artifacts-$ACCOUNT-$REGION"
if ! aws s3api head-bucket --bucket "$ARTIFACTS" 2>/dev/null; then
  step "creating artifact bucket $ARTIFACTS"
  aws s3 mb "s3://$ARTIFACTS" --region "$REGION" >/dev/null
  aws s3api put-public-access-block --bucket "$ARTIFACTS" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
fi
aws cloudformation package --template-file infra/template.yaml --s3-bucket "$ARTIFACTS" \
  --s3-prefix "$STACK" --output-template-file "$BUILD/template.packaged.yaml" >/dev/null

# Signed playback (docs/deploy.md): given a public key file, the stack trusts it; unset, the stack
# keeps what it had (aws cloudformation deploy reuses a parameter's previous value).
PLAYBACK=()
if [ -n "${PLAYBACK_PUBLIC_KEY_FILE:-}" ]; then
  [ -f "$PLAYBACK_PUBLIC_KEY_FILE" ] || die "PLAYBACK_PUBLIC_KEY_FILE=$PLAYBACK_PUBLIC_KEY_FILE not found"
  PLAYBACK+=(SignedPlayback=enabled "PlaybackPublicKey=$(cat "$PLAYBACK_PUBLIC_KEY_FILE")")
fi
[ -n "${SIGNED_PLAYBACK:-}" ] && PLAYBACK+=("SignedPlayback=$SIGNED_PLAYBACK")
[ -n "${PLAYBACK_KEY_VERSION:-}" ] && PLAYBACK+=("PlaybackKeyVersion=$PLAYBACK_KEY_VERSION")
[ -n "${PLAYER_ORIGINS:-}" ] && PLAYBACK+=("PlayerOrigins=$PLAYER_ORIGINS")

# ALARM_EMAIL=you@example.com subscribes an address to the alarm topic (kept on later deploys).
deploy_stack() {
  aws cloudformation deploy --stack-name "$STACK" --template-file "$BUILD/template.packaged.yaml" \
    --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
    --parameter-overrides AppName="$APP" Stage="$STAGE" ${ALARM_EMAIL:+"AlarmEmail=$ALARM_EMAIL"} ${PLAYBACK[@]+"${PLAYBACK[@]}"} "$@" \
    --tags app="$APP" stage="$STAGE"
}

step "1/3 stateful stack (buckets, table, queues, CloudFront, state machine)"
deploy_stack
aws cloudformation describe-stacks --stack-name "$STACK" --query 'Stacks[0].Outputs' --output json > "$BUILD/outputs.json"

step "2/3 chalice deploy --stage $STAGE"
"$PY" infra/stage_config.py prepare --stage "$STAGE" --outputs "$BUILD/outputs.json" --dest "$BUILD/project" >/dev/null
# app.py's decorators read the stage at import (queue names; ingest arrives EventBridge -> SQS).
(cd "$BUILD/project" && STAGE="$STAGE" INGEST_TRIGGER=sqs "$CHALICE" deploy --stage "$STAGE")

step "3/3 wiring the state machine to the lifecycle function, CloudFront to the LL-HLS origin function"
LIFECYCLE_ARN=$("$PY" infra/stage_config.py function-arn --deployed "$BUILD/project/.chalice/deployed/$STAGE.json" --name lifecycle)
# The LL-HLS origin (blocking playlist reload) gets its function URL, origin access control and the
# CloudFront behaviours for */ll.m3u8 and *.?.m4s only once chalice has created the function.
LL_ORIGIN_ARN=$("$PY" infra/stage_config.py function-arn --deployed "$BUILD/project/.chalice/deployed/$STAGE.json" --name ll_origin)
deploy_stack LifecycleFunctionArn="$LIFECYCLE_ARN" LlOriginFunctionArn="$LL_ORIGIN_ARN"

API_URL=$(cd "$BUILD/project" && "$CHALICE" url --stage "$STAGE" 2>/dev/null || true)
PLAYBACK=$(aws cloudformation describe-stacks --stack-name "$STACK" --query "Stacks[0].Outputs[?OutputKey=='PlaybackBaseUrl'].OutputValue" --output text)
step "done"
echo "API:      $API_URL"
echo "Playback: $PLAYBACK/{channel}/master.m3u8"
echo "LL-HLS:   $PLAYBACK/{channel}/ll.m3u8 (channels created with low_latency)"
