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

if aws cloudformation describe-stacks --stack-name "$STACK" --query 'Stacks[0].Outputs' --output json > "$BUILD.outputs.json" 2>/dev/null; then
  if [ -f "$ROOT/.chalice/deployed/$STAGE.json" ]; then
    step "chalice delete --stage $STAGE"
    "$PY" infra/stage_config.py prepare --stage "$STAGE" --outputs "$BUILD.outputs.json" --dest "$BUILD/project" >/dev/null
    (cd "$BUILD/project" && "$CHALICE" delete --stage "$STAGE")
  fi
  # CloudFormation cannot delete a non-empty bucket.
  for key in IngestBucketName OriginBucketName; do
    bucket=$(aws cloudformation describe-stacks --stack-name "$STACK" --query "Stacks[0].Outputs[?OutputKey=='$key'].OutputValue" --output text)
    if [ -n "$bucket" ] && [ "$bucket" != "None" ]; then
      step "emptying s3://$bucket"
      aws s3 rm "s3://$bucket" --recursive --only-show-errors || true
    fi
  done
  step "deleting stack $STACK"
  aws cloudformation delete-stack --stack-name "$STACK"
  aws cloudformation wait stack-delete-complete --stack-name "$STACK"
else
  step "stack $STACK does not exist"
fi
rm -rf "$BUILD" "$BUILD.outputs.json"
step "done"
