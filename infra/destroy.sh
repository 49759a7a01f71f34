#!/usr/bin/env bash
# make destroy STAGE=prod: chalice delete, empty the buckets, delete the stack. Asks first unless
# CONFIRM=slipstream-$STAGE is set (CI, scripts). See docs/deploy.md.
TOOL=destroy
# shellcheck source=infra/common.sh
source "$(dirname "$0")/common.sh"

if [ "${CONFIRM:-}" != "$STACK" ]; then
  [ -t 0 ] || die "refusing to destroy $STACK without CONFIRM=$STACK"
  read -r -p "Delete stack $STACK, its API, functions and ALL media in its buckets? Type '$STACK': " answer
  [ "$answer" = "$STACK" ] || die "not confirmed"
fi

DEPLOYED="$ROOT/.chalice/deployed/$STAGE.json"
if aws cloudformation describe-stacks --stack-name "$STACK" --query 'Stacks[0].Outputs' --output json > "$BUILD.outputs.json" 2>/dev/null; then
  if [ -f "$DEPLOYED" ]; then
    step "chalice delete --stage $STAGE"
    "$PY" infra/stage_config.py prepare --stage "$STAGE" --outputs "$BUILD.outputs.json" --dest "$BUILD/project" >/dev/null
    (cd "$BUILD/project" && "${CHALICE_RUN[@]}" delete --stage "$STAGE")
  fi
  # CloudFormation cannot delete a bucket that holds anything, old versions included (ingest is versioned).
  for key in IngestBucketName OriginBucketName; do
    bucket=$(aws cloudformation describe-stacks --stack-name "$STACK" --query "Stacks[0].Outputs[?OutputKey=='$key'].OutputValue" --output text)
    if [ -n "$bucket" ] && [ "$bucket" != "None" ]; then
      emptied=$("$PY" infra/stage_config.py empty-bucket --bucket "$bucket") || die "could not empty s3://$bucket"
      step "emptied $emptied"
    fi
  done
  step "deleting stack $STACK"
  aws cloudformation delete-stack --stack-name "$STACK"
  aws cloudformation wait stack-delete-complete --stack-name "$STACK" \
    || die "stack $STACK: $("$PY" infra/stage_config.py stack-failure --stack "$STACK" 2>&1 | paste -sd ' ')"
else
  step "stack $STACK does not exist"
fi
# An emulator stage keeps its table outside the stack when DynamoDB runs elsewhere (deploy.sh).
if [ "$EMULATED" = 1 ] && [ -n "${AWS_ENDPOINT_URL_DYNAMODB:-}" ] && [ "${AWS_ENDPOINT_URL_DYNAMODB%/}" != "${AWS_ENDPOINT_URL%/}" ]; then
  table=$("$PY" infra/stage_config.py delete-table --stage "$STAGE") || die "could not delete the channel table"
  step "channel table $table"
fi
rm -rf "$BUILD" "$BUILD.outputs.json"
step "done"
