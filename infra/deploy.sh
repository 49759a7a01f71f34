#!/usr/bin/env bash
# make deploy STAGE=prod: (1) create/update the stateful stack, (2) chalice deploy the functions and
# API with the stack's names, (3) wire the state machine to the deployed lifecycle function.
# Needs AWS credentials in the environment (or a profile) and a region. See docs/deploy.md.
# STAGE=lsdeploy runs the same steps against LocalStack at AWS_ENDPOINT_URL (docs/deploy.md, LocalStack).
TOOL=deploy
# shellcheck source=infra/common.sh
source "$(dirname "$0")/common.sh"
[ -x "$CHALICE" ] || die "chalice not installed -- run: make deps"
ACCOUNT=$(aws sts get-caller-identity --query Account --output text) || die "no AWS credentials (aws sts get-caller-identity failed)"
step "account $ACCOUNT, region $REGION, stack $STACK"

# What the emulator stage changes, said out loud: LocalStack community has no CloudFront, and its
# DynamoDB needs a JDK and DynamoDB Local downloaded at first use, so a per-service endpoint
# (AWS_ENDPOINT_URL_DYNAMODB, the built-in emulator in the tests) may serve the table instead.
STACK_PARAMS=()
PREPARE=()
API_ENDPOINT=""
if [ "$EMULATED" = 1 ]; then
  STACK_PARAMS+=(Cdn=none "OriginEndpointUrl=${AWS_ENDPOINT_URL%/}")
  PREPARE+=(--service-endpoints)
  API_ENDPOINT=${AWS_ENDPOINT_URL%/}
  elsewhere=""
  for var in $(compgen -e | grep -E '^AWS_ENDPOINT_URL_' || true); do
    elsewhere+=" ${var#AWS_ENDPOINT_URL_} at ${!var};"
  done
  step "LocalStack at $AWS_ENDPOINT_URL runs every service of the stage except:${elsewhere:- none;} CloudFront: none (Cdn=none: players read the origin bucket path-style at ${AWS_ENDPOINT_URL%/}/{bucket})"
  if [ -n "${AWS_ENDPOINT_URL_DYNAMODB:-}" ] && [ "${AWS_ENDPOINT_URL_DYNAMODB%/}" != "${AWS_ENDPOINT_URL%/}" ]; then
    STACK_PARAMS+=(TableManagement=external)
    table=$("$PY" infra/stage_config.py ensure-table --stage "$STAGE") \
      || die "could not create the channel table at $AWS_ENDPOINT_URL_DYNAMODB"
    step "channel table outside the stack (TableManagement=external): $table"
  fi
fi

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

stack_status() {
  aws cloudformation describe-stacks --stack-name "$STACK" --query 'Stacks[0].StackStatus' --output text 2>/dev/null || echo NONE
}

# A first creation that failed and rolled back leaves an empty stack that can only be deleted.
case "$(stack_status)" in
  ROLLBACK_COMPLETE)
    step "stack $STACK is ROLLBACK_COMPLETE (its creation failed and rolled back): deleting it to create it again"
    aws cloudformation delete-stack --stack-name "$STACK"
    aws cloudformation wait stack-delete-complete --stack-name "$STACK" ;;
  *_IN_PROGRESS) die "stack $STACK is $(stack_status): wait for that operation to end, then deploy again" ;;
esac

# ALARM_EMAIL=you@example.com subscribes an address to the alarm topic (kept on later deploys).
# A failure ends the deploy with one line: the resource that failed, why, and the stack's state.
deploy_stack() {
  # --s3-bucket: a template over 51,200 bytes (this one) can only be passed to CloudFormation from S3.
  if ! aws cloudformation deploy --stack-name "$STACK" --template-file "$BUILD/template.packaged.yaml" \
    --s3-bucket "$ARTIFACTS" --s3-prefix "$STACK" --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
    --parameter-overrides AppName="$APP" Stage="$STAGE" ${ALARM_EMAIL:+"AlarmEmail=$ALARM_EMAIL"} \
      ${STACK_PARAMS[@]+"${STACK_PARAMS[@]}"} ${PLAYBACK[@]+"${PLAYBACK[@]}"} "$@" \
    --tags app="$APP" stage="$STAGE"; then
    die "stack $STACK: $("$PY" infra/stage_config.py stack-failure --stack "$STACK" 2>&1 | paste -sd ' ')"
  fi
}

step "1/3 stateful stack (buckets, table, queues, CloudFront, state machine)"
deploy_stack
aws cloudformation describe-stacks --stack-name "$STACK" --query 'Stacks[0].Outputs' --output json > "$BUILD/outputs.json"

step "2/3 chalice deploy --stage $STAGE"
"$PY" infra/stage_config.py prepare --stage "$STAGE" --outputs "$BUILD/outputs.json" --dest "$BUILD/project" \
  ${PREPARE[@]+"${PREPARE[@]}"} >/dev/null
# app.py's decorators read the stage at import (queue names; ingest arrives EventBridge -> SQS).
(cd "$BUILD/project" && STAGE="$STAGE" INGEST_TRIGGER=sqs "${CHALICE_RUN[@]}" deploy --stage "$STAGE") \
  || die "chalice deploy --stage $STAGE failed (its error is above); the stack is up, re-run make deploy after fixing it"

step "3/3 wiring the state machine to the lifecycle function, CloudFront to the LL-HLS origin function"
DEPLOYED="$BUILD/project/.chalice/deployed/$STAGE.json"
LIFECYCLE_ARN=$("$PY" infra/stage_config.py function-arn --deployed "$DEPLOYED" --name lifecycle)
# The LL-HLS origin (blocking playlist reload) gets its function URL, origin access control and the
# CloudFront behaviours for */ll.m3u8 and *.?.m4s only once chalice has created the function, and
# only with a CDN (the template's LlOriginOnCdn: with Cdn=none the ARN is passed but nothing uses it).
LL_ORIGIN_ARN=$("$PY" infra/stage_config.py function-arn --deployed "$DEPLOYED" --name ll_origin)
deploy_stack LifecycleFunctionArn="$LIFECYCLE_ARN" LlOriginFunctionArn="$LL_ORIGIN_ARN"

API_URL=$("$PY" infra/stage_config.py rest-api-url --deployed "$DEPLOYED" --endpoint "$API_ENDPOINT")
PLAYBACK_BASE=$(aws cloudformation describe-stacks --stack-name "$STACK" --query "Stacks[0].Outputs[?OutputKey=='PlaybackBaseUrl'].OutputValue" --output text)
step "done"
echo "API:      $API_URL"
echo "Playback: $PLAYBACK_BASE/{channel}/master.m3u8"
if [ "$EMULATED" = 1 ]; then
  echo "LL-HLS:   none (Cdn=none: the LL origin is served through CloudFront only)"
else
  echo "LL-HLS:   $PLAYBACK_BASE/{channel}/ll.m3u8 (channels created with low_latency)"
fi
