"""infra/template.yaml: lints clean, merges with `chalice package`, and means what docs/deploy.md says.

These are the checks CI can make without an AWS account: a template that cfn-lint rejects, or a
cache policy that lets playlists go stale at the edge, would only show up after a real deploy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "infra" / "template.yaml"

PARAMS = {"AppName": "slipstream", "Stage": "prod", "AWS::AccountId": "123456789012", "AWS::Region": "eu-west-1",
          "AWS::Partition": "aws"}


def resolve(value: Any, params: dict[str, str] = PARAMS) -> str:
    """Evaluate the Fn::Sub / Ref forms the template uses for names (enough for these checks)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: params[m.group(1)], value["Fn::Sub"])
    if isinstance(value, dict) and "Ref" in value:
        return params[value["Ref"]]
    raise AssertionError(f"cannot resolve {value!r}")


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def cache_behaviours(dist: dict[str, Any], ll_wired: bool = True) -> list[dict[str, Any]]:
    """The distribution's ordered cache behaviours, with the LL-HLS ones (`!If [LlOriginOnCdn, ...]`) in or out."""
    out = []
    for b in dist["CacheBehaviors"]:
        if "Fn::If" in b:
            condition, then, _else = b["Fn::If"]
            assert condition == "LlOriginOnCdn" and _else == {"Ref": "AWS::NoValue"}, b
            if ll_wired:
                out.append(then)
        else:
            out.append(b)
    return out


def test_given_the_template_when_cfn_lint_runs_then_it_reports_nothing(cfn_lint: Any) -> None:
    result = cfn_lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_given_chalice_package_with_the_merged_template_when_linted_then_it_is_valid(
    packaged: tuple[Any, Path], cfn_lint: Any
) -> None:
    """What `chalice package --merge-template` produces is one deployable SAM template, and the ingest
    path arrives through the EventBridge -> SQS queue (chalice package drops @app.on_s3_event)."""
    proc, out = packaged
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sam = out / "sam.yaml"
    assert sam.is_file(), sorted(p.name for p in out.iterdir())
    lint = cfn_lint(sam)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    from cfnlint.decode import decode

    merged, errors = decode(str(sam))
    assert not errors and merged is not None
    # The stateful resources survived the merge next to chalice's functions.
    assert {"ChannelTable", "IngestEventsQueue", "IngestRule", "Distribution", "ChannelStateMachine"} <= set(
        merged["Resources"]
    )
    functions = resources_of(dict(merged), "AWS::Serverless::Function")
    assert functions, "chalice package produced no functions: app.py defines no handlers yet"
    sqs_sources = [
        json.dumps(event["Properties"]["Queue"])
        for fn in functions.values()
        for event in fn["Properties"].get("Events", {}).values()
        if event["Type"] == "SQS"
    ]
    assert any("slipstream-dev-ingest-events" in q for q in sqs_sources), (
        "no function consumes the stage's ingest-events queue; SQS sources: " + repr(sqs_sources)
    )
    # Every queue a function consumes is one the stack creates (chalice only builds the ARN from a name).
    dev = {**PARAMS, "Stage": "dev"}
    queues = resources_of(dict(merged), "AWS::SQS::Queue").values()
    created = {resolve(q["Properties"]["QueueName"], dev) for q in queues}
    consumed = {re.sub(r'"}$', "", q).rsplit(":", 1)[-1] for q in sqs_sources}
    assert consumed <= created, f"functions consume queues the stack does not create: {sorted(consumed - created)}"


def test_every_placeholder_of_the_state_machine_is_substituted_by_the_stack(template: dict[str, Any]) -> None:
    sm = template["Resources"]["ChannelStateMachine"]["Properties"]
    asl_path = (TEMPLATE.parent / sm["DefinitionS3Location"]).resolve()
    assert asl_path.is_file(), f"DefinitionS3Location points at a missing file: {asl_path}"
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", asl_path.read_text()))
    assert placeholders, "the ASL has no ${...} placeholders: is DefinitionS3Location the right file?"
    missing = placeholders - set(sm["DefinitionSubstitutions"])
    assert not missing, f"template does not substitute {sorted(missing)}"


def test_the_stack_substitutes_the_same_keys_as_the_lifecycle_code(template: dict[str, Any]) -> None:
    """One source of truth for the ASL's inputs: the template and chalicelib.control.asl agree."""
    asl = pytest.importorskip("chalicelib.control.asl")
    expected = set(asl.substitutions("arn:aws:lambda:eu-west-1:123456789012:function:x"))
    given = set(template["Resources"]["ChannelStateMachine"]["Properties"]["DefinitionSubstitutions"])
    assert given == expected


def test_playlists_expire_quickly_at_the_edge_and_segments_stay_cached(template: dict[str, Any]) -> None:
    res = template["Resources"]
    dist = res["Distribution"]["Properties"]["DistributionConfig"]
    manifests = res["ManifestCachePolicy"]["Properties"]["CachePolicyConfig"]
    segments = res["SegmentCachePolicy"]["Properties"]["CachePolicyConfig"]
    # Origin max-age (half a segment) must win for playlists: MinTTL 0, and a wrong header is capped.
    assert manifests["MinTTL"] == 0 and manifests["MaxTTL"] <= 10
    by_pattern = {b["PathPattern"]: b["CachePolicyId"] for b in cache_behaviours(dist)}
    assert by_pattern["*.m3u8"] == {"Ref": "ManifestCachePolicy"}
    assert by_pattern["*.mpd"] == {"Ref": "ManifestCachePolicy"}
    # Everything else (segments, init segments) is immutable: 14 days unless the origin says otherwise.
    assert dist["DefaultCacheBehavior"]["CachePolicyId"] == {"Ref": "SegmentCachePolicy"}
    assert segments["DefaultTTL"] >= 14 * 86400
    # A segment requested a moment too early must not stay a cached 404.
    assert {e["ErrorCode"]: e["ErrorCachingMinTTL"] for e in dist["CustomErrorResponses"]}[404] <= 1


def test_the_origin_bucket_is_private_and_readable_only_through_the_distribution(template: dict[str, Any]) -> None:
    res = template["Resources"]
    block = res["OriginBucket"]["Properties"]["PublicAccessBlockConfiguration"]
    assert all(block[k] is True for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls",
                                          "RestrictPublicBuckets"))
    origin = res["Distribution"]["Properties"]["DistributionConfig"]["Origins"][0]
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["OriginAccessControl", "Id"]}
    oac = res["OriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert oac["SigningBehavior"] == "always"
    # With a CDN (Cdn=none, the emulator stage, has none to allow).
    bucket_policy = [s["Fn::If"][1] if "Fn::If" in s else s
                     for s in res["OriginBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]]
    allows = [s for s in bucket_policy if s["Effect"] == "Allow"]
    assert len(allows) == 1
    assert allows[0]["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allows[0]["Action"] == "s3:GetObject"
    source_arn = allows[0]["Condition"]["StringEquals"]["AWS:SourceArn"]
    assert "${Distribution}" in json.dumps(source_arn), "any distribution could read the bucket"


def test_every_work_queue_redrives_to_a_dead_letter_queue(template: dict[str, Any]) -> None:
    queues = resources_of(template, "AWS::SQS::Queue")
    work = {k: v for k, v in queues.items() if not k.endswith("DLQ")}
    assert set(work) == {"TranscodeQueue", "PackageQueue", "IngestEventsQueue"}
    for name, queue in work.items():
        redrive = queue["Properties"]["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [name.replace("Queue", "DLQ"), "Arn"]}
        assert 1 <= redrive["maxReceiveCount"] <= 10


def test_uploads_to_the_ingest_bucket_reach_the_ingest_queue(template: dict[str, Any]) -> None:
    res = template["Resources"]
    assert res["IngestBucket"]["Properties"]["NotificationConfiguration"]["EventBridgeConfiguration"][
        "EventBridgeEnabled"] is True
    rule = res["IngestRule"]["Properties"]
    assert rule["EventPattern"]["source"] == ["aws.s3"]
    assert rule["EventPattern"]["detail-type"] == ["Object Created"]
    assert rule["EventPattern"]["detail"]["bucket"]["name"] == [{"Ref": "IngestBucket"}]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["IngestEventsQueue", "Arn"]}
    # The queue accepts messages from exactly this rule.
    statement = res["IngestEventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": ["IngestRule", "Arn"]}
    # Raw chunks are only needed until transcoded.
    rules = res["IngestBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(r.get("ExpirationInDays") for r in rules)


def test_the_state_machine_may_invoke_only_this_stages_functions(template: dict[str, Any]) -> None:
    role = template["Resources"]["StateMachineRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    invoke = [s for s in statements if "lambda:InvokeFunction" in json.dumps(s["Action"])]
    assert len(invoke) == 1
    arns = [resolve(r) for r in invoke[0]["Resource"]]
    assert arns == ["arn:aws:lambda:eu-west-1:123456789012:function:slipstream-prod-*"]


def test_the_table_matches_the_shared_record_layout(template: dict[str, Any]) -> None:
    table = template["Resources"]["ChannelTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {("pk", "HASH"), ("sk", "RANGE")}
    assert table["TimeToLiveSpecification"]["Enabled"] is True


def test_every_output_the_deploy_script_maps_exists(template: dict[str, Any]) -> None:
    from infra.stage_config import OUTPUT_ENV

    assert set(OUTPUT_ENV) <= set(template["Outputs"]), set(OUTPUT_ENV) - set(template["Outputs"])


def test_given_signing_enabled_then_playlists_and_segments_trust_the_stages_key_group(template: dict[str, Any]) -> None:
    res = template["Resources"]
    assert template["Parameters"]["SignedPlayback"]["Default"] == "disabled"
    key, group = res["PlaybackSigningKey"], res["PlaybackKeyGroup"]
    assert key["Type"] == "AWS::CloudFront::PublicKey" and key["Condition"] == "SigningEnabled"
    assert key["Properties"]["PublicKeyConfig"]["EncodedKey"] == {"Ref": "PlaybackPublicKey"}
    assert group["Properties"]["KeyGroupConfig"]["Items"] == [{"Ref": "PlaybackSigningKey"}]
    dist = res["Distribution"]["Properties"]["DistributionConfig"]
    behaviours = {"default": dist["DefaultCacheBehavior"], **{b["PathPattern"]: b for b in cache_behaviours(dist)}}
    assert set(behaviours) == {"default", "*/ll.m3u8", "*.?.m4s", "*.m3u8", "*.mpd"}
    trusted = {"Fn::If": ["SigningEnabled", [{"Ref": "PlaybackKeyGroup"}], {"Ref": "AWS::NoValue"}]}
    for name, behaviour in behaviours.items():
        assert behaviour["TrustedKeyGroups"] == trusted, name
    # Enabling signing without a key fails at deploy time with a message, not deep in CloudFront.
    rule = template["Rules"]["SigningNeedsAPublicKey"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "SignedPlayback"}, "enabled"]}
    [assertion] = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "PlaybackPublicKey"}, ""]}]}
    # The API learns the Key-Pair-Id from the stack, and the private key's parameter name.
    from infra.stage_config import OPTIONAL_OUTPUT_ENV

    assert set(OPTIONAL_OUTPUT_ENV) <= set(template["Outputs"])
    assert {k: template["Outputs"][k]["Condition"] for k in OPTIONAL_OUTPUT_ENV} == {
        "DistributionId": "HasCdn", "PlaybackKeyPairId": "SigningEnabled",
        "PlaybackPrivateKeyParameter": "SigningEnabled"}


def test_signed_cookies_cmcd_and_signature_parameters_stay_out_of_every_cache_key(template: dict[str, Any]) -> None:
    """CMCD (?CMCD=...) and Policy/Signature/Key-Pair-Id differ per viewer and per request: in a cache
    key each value would be a miss. The edge checks signatures before the cache, so none is needed."""
    for name in ("ManifestCachePolicy", "SegmentCachePolicy"):
        key = template["Resources"][name]["Properties"]["CachePolicyConfig"]["ParametersInCacheKeyAndForwardedToOrigin"]
        query = key["QueryStringsConfig"]
        assert query["QueryStringBehavior"] == "none" or (
            query["QueryStringBehavior"] == "allExcept"
            and {"CMCD", "Policy", "Signature", "Key-Pair-Id"} <= set(query["QueryStrings"])), name
        assert key["CookiesConfig"]["CookieBehavior"] == "none", name


def test_cross_site_signed_cookies_need_named_player_origins(template: dict[str, Any]) -> None:
    cors = template["Resources"]["PlaybackHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]["CorsConfig"]
    # Browsers refuse credentialed responses with "Access-Control-Allow-Origin: *".
    assert cors["AccessControlAllowCredentials"] == {"Fn::If": ["AnyPlayerOrigin", False, True]}
    assert cors["AccessControlAllowOrigins"] == {"Items": {"Fn::Split": [",", {"Ref": "PlayerOrigins"}]}}
    assert template["Parameters"]["PlayerOrigins"]["Default"] == "*"


def test_ll_hls_paths_go_to_the_ll_origin_function_with_the_directives_in_the_cache_key(
    template: dict[str, Any],
) -> None:
    """RFC 8216bis Appendix B: _HLS_msn, _HLS_part and _HLS_skip are what a blocking response answers,
    so they are the cache key (and nothing per-viewer is); the origin's max-age decides the TTL."""
    res = template["Resources"]
    dist = res["Distribution"]["Properties"]["DistributionConfig"]
    patterns = [b["PathPattern"] for b in cache_behaviours(dist)]
    # CloudFront takes the first matching pattern: the LL ones must come before *.m3u8.
    assert patterns.index("*/ll.m3u8") < patterns.index("*.m3u8") and patterns.index("*.?.m4s") == 1
    assert [b["PathPattern"] for b in cache_behaviours(dist, ll_wired=False)] == ["*.m3u8", "*.mpd"]
    by_pattern = {b["PathPattern"]: b for b in cache_behaviours(dist)}
    for pattern in ("*/ll.m3u8", "*.?.m4s"):
        assert by_pattern[pattern]["TargetOriginId"] == "ll-origin"
    assert by_pattern["*/ll.m3u8"]["CachePolicyId"] == {"Ref": "LowLatencyPlaylistCachePolicy"}
    assert by_pattern["*.?.m4s"]["CachePolicyId"] == {"Ref": "SegmentCachePolicy"}  # parts are immutable
    policy = res["LowLatencyPlaylistCachePolicy"]["Properties"]["CachePolicyConfig"]
    key = policy["ParametersInCacheKeyAndForwardedToOrigin"]
    assert key["QueryStringsConfig"] == {"QueryStringBehavior": "whitelist",
                                         "QueryStrings": ["_HLS_msn", "_HLS_part", "_HLS_skip"]}
    assert key["CookiesConfig"] == {"CookieBehavior": "none"} and key["HeadersConfig"] == {"HeaderBehavior": "none"}
    # The origin's Cache-Control wins: 6 target durations for a blocking answer (12 s), 1 s otherwise.
    assert policy["MinTTL"] == 0 and policy["DefaultTTL"] <= 1 and policy["MaxTTL"] >= 12
    origins = dist["Origins"]
    [ll] = [o["Fn::If"][1] for o in origins if "Fn::If" in o]
    assert ll["Id"] == "ll-origin" and ll["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert ll["CustomOriginConfig"]["OriginReadTimeout"] > 6  # a request is held up to 3 target durations
    assert ll["OriginAccessControlId"] == {"Fn::GetAtt": ["LlOriginAccessControl", "Id"]}
    oac = res["LlOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert oac["OriginAccessControlOriginType"] == "lambda" and oac["SigningBehavior"] == "always"
    url = res["LlOriginUrl"]["Properties"]
    assert url["AuthType"] == "AWS_IAM"  # only CloudFront's signed requests reach the function
    for name, action in (("LlOriginUrlPermission", "lambda:InvokeFunctionUrl"),
                         ("LlOriginInvokePermission", "lambda:InvokeFunction")):
        perm = res[name]["Properties"]
        assert perm["Action"] == action and perm["Principal"] == "cloudfront.amazonaws.com"
        assert "${Distribution}" in json.dumps(perm["SourceArn"])
    for name in ("LlOriginUrl", "LlOriginAccessControl", "LlOriginUrlPermission", "LlOriginInvokePermission"):
        assert res[name]["Condition"] == "LlOriginOnCdn", name
    # The LL origin is reached through CloudFront only: without a CDN (Cdn=none) none of it exists.
    assert template["Conditions"]["LlOriginOnCdn"] == {"Fn::And": [{"Condition": "LlOriginWired"},
                                                                   {"Condition": "HasCdn"}]}
    assert res["LowLatencyPlaylistCachePolicy"]["Condition"] == "HasCdn"
    assert template["Outputs"]["LowLatencyOriginUrl"]["Condition"] == "LlOriginOnCdn"


def test_the_deploy_script_wires_the_ll_origin_function_after_chalice_created_it() -> None:
    script = (ROOT / "infra" / "deploy.sh").read_text()
    assert "--name ll_origin" in script and 'LlOriginFunctionArn="$LL_ORIGIN_ARN"' in script
    assert script.index("chalice") < script.index("LlOriginFunctionArn=")


def test_given_no_cdn_then_no_cloudfront_resource_exists_and_players_read_the_bucket_only_on_the_emulator_stage(
    template: dict[str, Any],
) -> None:
    """Cdn=none is for LocalStack community (stage lsdeploy), which has no CloudFront. cfn-lint (above)
    checks that nothing refers to a resource its conditions may leave out."""
    res = template["Resources"]
    cloudfront = {k: v.get("Condition") for k, v in res.items() if v["Type"].startswith("AWS::CloudFront::")}
    # The signing key and group need SignedPlayback=enabled, which the rule below refuses without a CDN;
    # the LL origin's access control needs the CDN and the ll_origin function (LlOriginOnCdn).
    assert {k: c for k, c in cloudfront.items() if c != "HasCdn"} == {
        "PlaybackSigningKey": "SigningEnabled", "PlaybackKeyGroup": "SigningEnabled",
        "LlOriginAccessControl": "LlOriginOnCdn"}
    assert template["Conditions"]["HasCdn"] == {"Fn::Equals": [{"Ref": "Cdn"}, "cloudfront"]}
    assert template["Parameters"]["Cdn"]["Default"] == "cloudfront"
    rule = template["Rules"]["NoCdnOnlyOnTheEmulatorStage"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "Cdn"}, "none"]}
    assert [a["Assert"] for a in rule["Assertions"]] == [{"Fn::Equals": [{"Ref": "Stage"}, "lsdeploy"]},
                                                         {"Fn::Equals": [{"Ref": "SignedPlayback"}, "disabled"]}]
    # Without CloudFront's response headers policy, the bucket itself answers cross-origin players.
    cors = res["OriginBucket"]["Properties"]["CorsConfiguration"]["Fn::If"]
    assert cors[0] == "HasCdn" and cors[1] == {"Ref": "AWS::NoValue"}
    assert cors[2]["CorsRules"][0]["AllowedOrigins"] == {"Fn::Split": [",", {"Ref": "PlayerOrigins"}]}
    playback = template["Outputs"]["PlaybackBaseUrl"]["Value"]["Fn::If"]
    assert playback[0] == "HasCdn"
    assert playback[2] == {"Fn::If": ["HasOriginEndpoint", {"Fn::Sub": "${OriginEndpointUrl}/${OriginBucket}"},
                                      {"Fn::Sub": "https://${OriginBucket.RegionalDomainName}"}]}
    assert template["Outputs"]["DistributionId"]["Condition"] == "HasCdn"
