"""Deploy a Chalice app to an AWS endpoint (LocalAWS, LocalStack) without `chalice deploy`.

`chalice deploy` fails against moto (it emits Swagger 2; moto's ImportRestApi wants OpenAPI 3), so
this reads the app object instead: every event source and @app.lambda_function becomes a Lambda
function, with the same wiring Chalice would create, plus the stateful resources the stage's
config names. It only speaks boto3 through AWS_ENDPOINT_URL, so it works against any emulator.
Re-running it updates code and configuration in place.

    dep = deploy("/work/main", stage="local")
    os.environ.update(dep.env())
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

REGION = "us-east-1"
RUNTIME = "python3.11"
DEFAULT_TIMEOUT = 60  # Chalice's default lambda_timeout
DEFAULT_MEMORY = 128  # Chalice's default lambda_memory_size
DLQ_MAX_RECEIVE = 3
FUNCTION_WAIT = {"Delay": 0.25, "MaxAttempts": 240}  # botocore's 1 s polls would add ~1 s per function
LAYER_ZIP = Path("layers/ffmpeg/build/ffmpeg-layer.zip")
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
ASSUME_ROLE = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
         "Action": "sts:AssumeRole"}
    ],
}


class DeployError(Exception):
    """The app or its config cannot be deployed as written (the message says what to fix)."""


ENDPOINT_VAR = "AWS_ENDPOINT_URL"


@functools.cache
def endpoint_variable(service: str) -> str:
    """The per-service variable boto3 honours for `service` (dynamodb -> AWS_ENDPOINT_URL_DYNAMODB,
    stepfunctions -> AWS_ENDPOINT_URL_SFN): the service id, upper case, spaces as underscores."""
    import botocore.session

    service_id = botocore.session.get_session().get_service_model(service).service_id
    return f"{ENDPOINT_VAR}_{str(service_id).upper().replace(' ', '_')}"


def service_endpoints(env: Mapping[str, str]) -> dict[str, str]:
    """The AWS_ENDPOINT_URL_<SERVICE> overrides in env (a split stack: LocalStack + the built-in emulator)."""
    return {k: v for k, v in env.items() if k.startswith(f"{ENDPOINT_VAR}_") and v}


def endpoint_for(service: str, env: Mapping[str, str]) -> str:
    """The endpoint boto3 would use for `service` under env: its own variable, else AWS_ENDPOINT_URL."""
    return env.get(endpoint_variable(service)) or env.get(ENDPOINT_VAR, "")


@dataclass
class Deployment:
    app_name: str
    stage: str
    endpoint: str
    region: str
    account: str
    table_name: str
    ingest_bucket: str
    origin_bucket: str
    functions: dict[str, str] = field(default_factory=dict)  # handler name -> function name
    function_arns: dict[str, str] = field(default_factory=dict)  # handler name -> ARN
    queues: dict[str, str] = field(default_factory=dict)  # queue name -> URL (DLQs included)
    state_machines: dict[str, str] = field(default_factory=dict)  # file stem -> ARN
    distribution_id: str = ""
    distribution_domain: str = ""  # moto's CloudFront has no data plane; PLAYBACK_BASE_URL is the origin
    playback_base_url: str = ""
    layer_arn: str = ""
    function_env: dict[str, str] = field(default_factory=dict)  # what every function gets
    substitutions: dict[str, str] = field(default_factory=dict)  # ${Name} values for ASL files
    service_endpoints: dict[str, str] = field(default_factory=dict)  # AWS_ENDPOINT_URL_<SERVICE> overrides

    @property
    def transcode_queue_url(self) -> str:
        return self.function_env.get("TRANSCODE_QUEUE_URL", "")

    @property
    def package_queue_url(self) -> str:
        return self.function_env.get("PACKAGE_QUEUE_URL", "")

    @property
    def state_machine_arn(self) -> str:
        return self.function_env.get("STATE_MACHINE_ARN", "")

    def function_name(self, handler: str) -> str:
        try:
            return self.functions[handler]
        except KeyError:
            raise KeyError(f"no deployed handler {handler!r}; deployed: {sorted(self.functions)}") from None

    def env(self) -> dict[str, str]:
        """The resource names for tests and the demo, plus what boto3 needs to reach the endpoint."""
        return {
            **self.function_env,
            **self.service_endpoints,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        }


def load_stage_config(app_dir: Path, stage: str) -> dict[str, Any]:
    """Chalice's config precedence: top level < stage < stage.lambda_functions[name] (merged later)."""
    path = app_dir / ".chalice" / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise DeployError(f"{path} not found: a Chalice app needs .chalice/config.json") from None
    if stage not in config.get("stages", {}):
        raise DeployError(f"stage {stage!r} not in {path}; stages: {sorted(config.get('stages', {}))}")
    stage_cfg = config["stages"][stage]
    return {
        "app_name": config.get("app_name", ""),
        "env": {**config.get("environment_variables", {}), **stage_cfg.get("environment_variables", {})},
        "timeout": stage_cfg.get("lambda_timeout", config.get("lambda_timeout", DEFAULT_TIMEOUT)),
        "memory": stage_cfg.get("lambda_memory_size", config.get("lambda_memory_size", DEFAULT_MEMORY)),
        "lambda_functions": {**config.get("lambda_functions", {}), **stage_cfg.get("lambda_functions", {})},
    }


def introspect(app_dir: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """The app's functions, read by importing app.py in a subprocess with the stage's env vars set."""
    script = Path(__file__).with_name("_introspect.py")
    proc = subprocess.run(
        [sys.executable, str(script), str(app_dir)],
        capture_output=True, text=True, cwd=app_dir, env={**os.environ, **env}, timeout=60, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise DeployError(f"importing {app_dir}/app.py failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def package(app_dir: Path) -> bytes:
    """app.py + chalicelib/ + vendor/ (what Chalice ships), as a deterministic zip.

    Fixed timestamps and order: unchanged code gives identical bytes, so the emulator's code cache
    and CodeSha256 stay put across redeploys.
    """
    files = [app_dir / "app.py"]
    for sub in ("chalicelib", "vendor"):
        root = app_dir / sub
        if root.is_dir():
            files += [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(files):
            info = zipfile.ZipInfo(str(path.relative_to(app_dir)), date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\-]", name) if part)


def render_asl(text: str, substitutions: Mapping[str, str], source: str = "definition") -> str:
    """Fill ${Name} placeholders; every one must be supplied (a typo would deploy a broken ARN)."""
    missing = sorted({m for m in PLACEHOLDER.findall(text) if m not in substitutions})
    if missing:
        raise DeployError(
            f"{source}: no value for placeholder(s) {', '.join(missing)}; "
            f"available: {', '.join(sorted(substitutions))}"
        )
    rendered = PLACEHOLDER.sub(lambda m: substitutions[m.group(1)], text)
    json.loads(rendered)  # fail here, naming the file, rather than in CreateStateMachine
    return rendered


class _Deployer:
    def __init__(self, app_dir: Path, stage: str, endpoint: str | None, region: str,
                 overrides: Mapping[str, str]) -> None:
        self.app_dir = app_dir
        self.stage = stage
        self.region = region
        self.endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL", "")
        self.overrides = dict(overrides)
        if not self.endpoint:
            raise DeployError("no endpoint: pass endpoint= or set AWS_ENDPOINT_URL (this deploys locally only)")
        self.session = boto3.session.Session(
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
            region_name=region,
        )
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            url = endpoint_for(service, {**self.overrides, ENDPOINT_VAR: self.endpoint})
            self._clients[service] = self.session.client(service, endpoint_url=url)
        return self._clients[service]

    # -- stateful resources -----------------------------------------------------------------------
    def bucket(self, name: str, versioned: bool = False) -> None:
        s3 = self.client("s3")
        try:
            s3.head_bucket(Bucket=name)
        except ClientError:
            s3.create_bucket(Bucket=name)
        if versioned:
            # Ingest pins the exact object version it accepted (a re-upload cannot replace it).
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})

    def table(self, name: str) -> None:
        ddb = self.client("dynamodb")
        try:
            ddb.describe_table(TableName=name)
        except ddb.exceptions.ResourceNotFoundException:
            ddb.create_table(
                TableName=name,
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                           {"AttributeName": "sk", "KeyType": "RANGE"}],
                BillingMode="PAY_PER_REQUEST",
            )  # fmt: skip

    def queue(self, name: str, visibility_timeout: int) -> tuple[str, str]:
        """Queue + `{name}-dlq` with redrive after DLQ_MAX_RECEIVE receives; returns (url, arn)."""
        sqs = self.client("sqs")
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        attrs = {
            # Lambda must finish a batch before its messages reappear.
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": DLQ_MAX_RECEIVE}),
        }
        try:
            url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        except ClientError:  # exists with other attributes: converge them
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attrs)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def role(self, name: str) -> str:
        iam = self.client("iam")
        try:
            arn: str = iam.get_role(RoleName=name)["Role"]["Arn"]
        except ClientError:
            arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(ASSUME_ROLE))["Role"]["Arn"]
        return arn

    def distribution(self, origin_bucket: str, comment: str) -> tuple[str, str]:
        cf = self.client("cloudfront")
        for item in cf.list_distributions().get("DistributionList", {}).get("Items", []) or []:
            if item.get("Comment") == comment:
                return item["Id"], item["DomainName"]
        origin_id = f"s3-{origin_bucket}"
        dist = cf.create_distribution(
            DistributionConfig={
                "CallerReference": comment,
                "Comment": comment,
                "Enabled": True,
                "Origins": {"Quantity": 1, "Items": [{
                    "Id": origin_id, "DomainName": f"{origin_bucket}.s3.amazonaws.com",
                    "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
                "DefaultCacheBehavior": {
                    "TargetOriginId": origin_id, "ViewerProtocolPolicy": "redirect-to-https",
                    "MinTTL": 0, "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                    "TrustedSigners": {"Enabled": False, "Quantity": 0}},
            }
        )["Distribution"]  # fmt: skip
        return dist["Id"], dist["DomainName"]

    def layer(self, name: str) -> str:
        path = self.app_dir / LAYER_ZIP
        if not path.is_file():
            return ""
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        lam = self.client("lambda")
        for version in lam.list_layer_versions(LayerName=name).get("LayerVersions", []):
            if version.get("Description") == digest:
                arn: str = version["LayerVersionArn"]
                return arn
        arn = lam.publish_layer_version(
            LayerName=name, Description=digest, Content={"ZipFile": data}, CompatibleRuntimes=[RUNTIME]
        )["LayerVersionArn"]
        return arn

    # -- functions ----------------------------------------------------------------------------------
    def function(self, name: str, handler: str, code: bytes, role: str, env: dict[str, str],
                 timeout: int, memory: int, layers: list[str]) -> str:
        lam = self.client("lambda")
        config = {"Role": role, "Handler": handler, "Runtime": RUNTIME, "Timeout": timeout,
                  "MemorySize": memory, "Environment": {"Variables": env}, "Layers": layers}
        try:
            lam.get_function(FunctionName=name)
        except lam.exceptions.ResourceNotFoundException:
            arn: str = lam.create_function(FunctionName=name, Code={"ZipFile": code}, **config)["FunctionArn"]
            # A new function is Pending until its code is ready; invocations and updates fail until then.
            lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FUNCTION_WAIT)
            return arn
        lam.update_function_code(FunctionName=name, ZipFile=code)
        # Lambda (and LocalStack) refuse an update while another is in progress: ResourceConflictException.
        lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FUNCTION_WAIT)
        arn = lam.update_function_configuration(FunctionName=name, **config)["FunctionArn"]
        lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FUNCTION_WAIT)
        return arn

    def sqs_mapping(self, function_name: str, queue_arn: str, batch_size: int, window: int) -> None:
        lam = self.client("lambda")
        existing = lam.list_event_source_mappings(FunctionName=function_name).get("EventSourceMappings", [])
        if any(m["EventSourceArn"] == queue_arn for m in existing):
            return
        lam.create_event_source_mapping(
            FunctionName=function_name, EventSourceArn=queue_arn, BatchSize=batch_size,
            MaximumBatchingWindowInSeconds=window, FunctionResponseTypes=["ReportBatchItemFailures"],
        )  # fmt: skip

    def rule(self, name: str, function_arn: str, *, pattern: dict[str, Any] | None = None,
             schedule: str | None = None) -> None:
        events = self.client("events")
        kwargs: dict[str, Any] = {"Name": name, "State": "ENABLED"}
        if pattern is not None:
            kwargs["EventPattern"] = json.dumps(pattern)
        if schedule is not None:
            kwargs["ScheduleExpression"] = schedule
        events.put_rule(**kwargs)
        events.put_targets(Rule=name, Targets=[{"Id": "1", "Arn": function_arn}])

    def s3_notifications(self, by_bucket: dict[str, list[dict[str, Any]]]) -> None:
        s3 = self.client("s3")
        for bucket, configs in by_bucket.items():
            self.bucket(bucket)
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"LambdaFunctionConfigurations": configs}
            )

    def state_machine(self, name: str, definition: str, role: str) -> str:
        sfn = self.client("stepfunctions")
        for sm in sfn.list_state_machines()["stateMachines"]:
            if sm["name"] == name:
                sfn.update_state_machine(stateMachineArn=sm["stateMachineArn"], definition=definition)
                arn: str = sm["stateMachineArn"]
                return arn
        arn = sfn.create_state_machine(name=name, definition=definition, roleArn=role)["stateMachineArn"]
        return arn


REPO_ROOT = Path(__file__).resolve().parents[2]
Substitutions = Mapping[str, str] | Callable[[Mapping[str, str]], Mapping[str, str]]


def project_substitutions(computed: Mapping[str, str], **overrides: int) -> dict[str, str]:
    """Slipstream's own ASL values, from chalicelib.control.asl (the one dict the app defines).

    `overrides` go to asl.substitutions (e.g. watchdog_interval=2 for a quick demo).
    """
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from chalicelib.control import asl

    return dict(asl.substitutions(computed["LifecycleFunctionArn"], **overrides))


def deploy(
    app_dir: str | os.PathLike[str],
    stage: str = "local",
    endpoint: str | None = None,
    region: str = REGION,
    substitutions: Substitutions | None = None,
    endpoints: Mapping[str, str] | None = None,
) -> Deployment:
    """Create or update everything the Chalice app at app_dir needs, on the endpoint (or AWS_ENDPOINT_URL).

    `substitutions` adds ${Name} values for the ASL files (a mapping, or a function of the computed
    ones: function ARNs, queue URLs, names). For this repo it defaults to `project_substitutions`.
    `endpoints` are per-service overrides ({"AWS_ENDPOINT_URL_DYNAMODB": url}; default: those in
    os.environ): the deployer uses them and so does every deployed function.
    """
    root = Path(app_dir).resolve()
    if substitutions is None and root == REPO_ROOT and (root / "chalicelib" / "control" / "asl.py").is_file():
        substitutions = project_substitutions
    cfg = load_stage_config(root, stage)
    stage_env: dict[str, str] = {k: str(v) for k, v in cfg["env"].items()}
    described = introspect(root, stage_env)
    app_name = described["app_name"] or cfg["app_name"]
    prefix = f"{app_name}-{stage}"
    overrides = service_endpoints(os.environ if endpoints is None else endpoints)
    d = _Deployer(root, stage, endpoint, region, overrides)
    account = d.client("sts").get_caller_identity()["Account"]

    table = stage_env.get("TABLE_NAME", prefix)
    ingest = stage_env.get("INGEST_BUCKET", f"{prefix}-ingest")
    origin = stage_env.get("ORIGIN_BUCKET", f"{prefix}-origin")
    functions = [f for f in described["functions"] if f["kind"] != "unsupported"]
    unsupported = [f for f in described["functions"] if f["kind"] == "unsupported"]
    if unsupported:
        raise DeployError(f"event sources this deployer cannot wire: {unsupported}")
    if described["has_routes"]:
        # The REST API handler: invoked with API Gateway proxy events (the demo uses `chalice local`).
        functions.append({"name": "api_handler", "handler": "app.app", "kind": "api"})

    def fn_settings(name: str) -> tuple[int, int, dict[str, str]]:
        own = cfg["lambda_functions"].get(name, {})
        return (int(own.get("lambda_timeout", cfg["timeout"])), int(own.get("lambda_memory_size", cfg["memory"])),
                {k: str(v) for k, v in own.get("environment_variables", {}).items()})

    fn_names = {f["name"]: (prefix if f["kind"] == "api" else f"{prefix}-{f['name']}") for f in functions}
    fn_arns = {n: f"arn:aws:lambda:{region}:{account}:function:{fn}" for n, fn in fn_names.items()}

    # Stateful resources first: functions' env vars and state machines reference them.
    d.bucket(ingest, versioned=True)
    d.bucket(origin)
    d.client("s3").put_bucket_cors(Bucket=origin, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"], "AllowedHeaders": ["*"], "MaxAgeSeconds": 60}]})
    d.table(table)
    queue_names = {f["queue"] for f in functions if f["kind"] == "sqs" and f.get("queue")}
    for role_suffix in ("transcode", "package"):
        if not any(q.endswith(f"-{role_suffix}") for q in queue_names):
            queue_names.add(f"{prefix}-{role_suffix}")
    consumers = {f["queue"]: f["name"] for f in functions if f["kind"] == "sqs" and f.get("queue")}
    queues: dict[str, str] = {}
    queue_arns: dict[str, str] = {}
    for q in sorted(queue_names):
        timeout = fn_settings(consumers[q])[0] if q in consumers else DEFAULT_TIMEOUT
        queues[q], queue_arns[q] = d.queue(q, timeout)
        queues[f"{q}-dlq"] = d.client("sqs").get_queue_url(QueueName=f"{q}-dlq")["QueueUrl"]
    dist_id, dist_domain = d.distribution(origin, f"{prefix}-origin")
    role = d.role(f"{prefix}-role")
    layer_arn = d.layer(f"{prefix}-ffmpeg")

    asl_files = sorted((root / "statemachines").glob("*.asl.json"))
    sm_names = {p.name.removesuffix(".asl.json"): f"{prefix}-{p.name.removesuffix('.asl.json')}" for p in asl_files}
    sm_arns = {stem: f"arn:aws:states:{region}:{account}:stateMachine:{n}" for stem, n in sm_names.items()}
    main_sm = sm_arns.get("channel") or next(iter(sm_arns.values()), "")

    function_env = {
        **stage_env,
        "STAGE": stage_env.get("STAGE", stage),
        "TABLE_NAME": table,
        "INGEST_BUCKET": ingest,
        "ORIGIN_BUCKET": origin,
        "TRANSCODE_QUEUE_URL": next(queues[q] for q in sorted(queue_names) if q.endswith("-transcode")),
        "PACKAGE_QUEUE_URL": next(queues[q] for q in sorted(queue_names) if q.endswith("-package")),
        "STATE_MACHINE_ARN": main_sm,
        "DISTRIBUTION_ID": dist_id,
        # Locally the player reads the origin bucket straight from the emulator (path-style S3 URL);
        # moto's CloudFront has no data plane.
        "PLAYBACK_BASE_URL": f"{d.endpoint.rstrip('/')}/{origin}",
    }
    subs: dict[str, str] = {
        "TableName": table, "IngestBucket": ingest, "OriginBucket": origin,
        "TranscodeQueueUrl": function_env["TRANSCODE_QUEUE_URL"],
        "PackageQueueUrl": function_env["PACKAGE_QUEUE_URL"],
        "DistributionId": dist_id, "Region": region, "AccountId": account, "Stage": stage, "AppName": app_name,
    }  # fmt: skip
    subs.update({k: v for k, v in function_env.items() if k.isupper()})
    for name, arn in fn_arns.items():
        for key in (f"{_pascal(name)}Arn", f"{_pascal(name)}FunctionArn", f"{name}_arn", name):
            subs[key] = arn
    for q, url in queues.items():
        subs[f"{_pascal(q)}QueueUrl"] = url
    for stem, arn in sm_arns.items():
        subs[f"{_pascal(stem)}StateMachineArn"] = arn

    if substitutions is not None:
        subs.update(substitutions(subs) if callable(substitutions) else substitutions)

    code = package(root)
    layers = [layer_arn] if layer_arn else []
    s3_configs: dict[str, list[dict[str, Any]]] = {}
    for f in functions:
        timeout, memory, own_env = fn_settings(f["name"])
        fn_name = fn_names[f["name"]]
        # The overrides too: a function must reach the service where the deployer created it.
        arn = d.function(fn_name, f["handler"], code, role, {**function_env, **overrides, **own_env},
                         timeout, memory, layers)
        if f["kind"] == "s3":
            rules = [{"Name": "prefix", "Value": f["prefix"]}] if f.get("prefix") else []
            rules += [{"Name": "suffix", "Value": f["suffix"]}] if f.get("suffix") else []
            conf: dict[str, Any] = {"Id": f["name"], "LambdaFunctionArn": arn, "Events": f["events"]}
            if rules:
                conf["Filter"] = {"Key": {"FilterRules": rules}}
            s3_configs.setdefault(f["bucket"], []).append(conf)
        elif f["kind"] == "sqs":
            q_arn = f.get("queue_arn") or queue_arns[f["queue"]]
            d.sqs_mapping(fn_name, q_arn, int(f["batch_size"]), int(f.get("batching_window") or 0))
        elif f["kind"] == "eventbridge":
            d.rule(f"{prefix}-{f['name']}", arn, pattern=f["event_pattern"])
        elif f["kind"] == "schedule":
            d.rule(f"{prefix}-{f['name']}", arn, schedule=f["schedule"])
    d.s3_notifications(s3_configs)

    state_machines: dict[str, str] = {}
    for path in asl_files:
        stem = path.name.removesuffix(".asl.json")
        definition = render_asl(path.read_text(), subs, source=str(path.relative_to(root)))
        state_machines[stem] = d.state_machine(sm_names[stem], definition, role)

    return Deployment(
        app_name=app_name, stage=stage, endpoint=d.endpoint, region=region, account=account,
        table_name=table, ingest_bucket=ingest, origin_bucket=origin,
        functions=fn_names, function_arns=fn_arns, queues=queues, state_machines=state_machines,
        distribution_id=dist_id, distribution_domain=dist_domain,
        playback_base_url=function_env["PLAYBACK_BASE_URL"], layer_arn=layer_arn,
        function_env=function_env, substitutions=subs, service_endpoints=overrides,
    )  # fmt: skip


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll predicate() until it returns something truthy; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last value: {last!r})")
