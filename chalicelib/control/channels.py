"""Channel use cases behind the HTTP API. One function per route; each takes the `Control` bundle.

The API never moves the lifecycle by itself where the state machine owns the transition: it
claims the transition with a conditional write (IDLE -> STARTING, RUNNING -> STOPPING) and then
completes the execution's waiting task with the command. If the execution cannot take the
command, the claim is rolled back, so nothing is half-applied.
"""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConflictError, NotFoundError, StoreError, ValidationError
from ..media.adbreaks import hls_dialects
from ..media.scte35 import DEFAULT_SCTE_FILTER
from ..obs import logger
from ..records import (
    CREATING,
    DELETED,
    ERROR,
    IDLE,
    MAX_SEQ,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    ChannelRecord,
    iso,
    parse_iso,
    run_name,
    validate_id,
)
from .models import ENCODING_FIELDS, MAX_INGEST_URLS, CreateChannel, IngestUrlsRequest, PatchChannel
from .ports import Control, PlaybackGrant, StaleTokenError

# States in which an execution is parked on `.waitForTaskToken` with no timeout: a failed
# SendTaskSuccess there means the execution is gone, not that the token rotated.
_PARKED = (IDLE, STOPPED)
MANIFEST_FIELDS = frozenset({"marker_style", "live_window", "dvr_window", "dash_ad_markers", "dash_period_triggers",
                             "ad_asset_uri", "ad_asset_list", "missing_media"})
AD_FIELDS = ("dash_ad_markers", "dash_period_triggers", "ad_asset_uri", "ad_asset_list", "scte_filter")


def view(record: ChannelRecord | dict[str, Any]) -> dict[str, Any]:
    """The channel as API clients see it (no task tokens, no internal counters)."""
    r = record if isinstance(record, ChannelRecord) else ChannelRecord.from_item(record)
    return {
        "id": r.id,
        "name": r.name,
        "state": r.state,
        "ladder": r.ladder,
        "marker_style": r.marker_style,
        "marker_dialects": list(hls_dialects(r.marker_style)),
        "dash_ad_markers": r.dash_ad_markers,
        "dash_period_triggers": r.dash_period_triggers,
        "ad_asset_uri": r.ad_asset_uri or None,
        "ad_asset_list": r.ad_asset_list or None,
        "scte_filter": list(r.scte_filter or DEFAULT_SCTE_FILTER),
        "segment_duration": r.segment_duration,
        "live_window": r.live_window,
        "dvr_window": r.dvr_window,
        "fanout": r.fanout,
        "low_latency": {"part_duration": r.part_duration} if r.part_duration else None,
        "missing_media": r.missing_media,
        "slate_wait": r.slate_wait or None,
        "input_loss_wait": 0.0 if r.input_loss_wait < 0 else (r.input_loss_wait or None),  # 0: off
        "run": r.run_no or None,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "started_at": r.started_at or None,
        "error": r.error or None,
    }


def execution_name(channel_id: str, created_ms: int) -> str:
    """Unique per account for 90 days, readable in the console, <= 80 chars (63 + 1 + 13)."""
    return f"{validate_id(channel_id)}-{created_ms}"


def create_channel(ctl: Control, body: CreateChannel) -> dict[str, Any]:
    s = ctl.settings
    now = ctl.clock()
    record = ChannelRecord(
        id=body.id,
        name=body.name,
        state=CREATING,
        ladder=body.ladder or s.ladder,
        marker_style=str(body.marker_style or "both"),
        dash_ad_markers=body.dash_ad_markers or "binary",
        dash_period_triggers=body.dash_period_triggers or "none",
        ad_asset_uri=body.ad_asset_uri or "",
        ad_asset_list=body.ad_asset_list or "",
        scte_filter=list(body.scte_filter or []),
        segment_duration=body.segment_duration or s.segment_duration,
        live_window=body.live_window or s.live_window,
        dvr_window=body.dvr_window or s.dvr_window,
        fanout=body.fanout,
        part_duration=body.low_latency.part_duration if body.low_latency else 0.0,
        missing_media=body.missing_media,
        slate_wait=body.slate_wait or 0.0,
        input_loss_wait=_input_loss(body.input_loss_wait),
        created_at=iso(now),
        updated_at=iso(now),
    )
    _check_windows(record.live_window, record.dvr_window, record.segment_duration)
    _check_parts(record.part_duration, record.segment_duration)
    _check_markers(record.marker_style, record.ad_asset_uri, record.ad_asset_list)
    ctl.store.create(record)
    try:
        arn = ctl.lifecycle.start(execution_name(body.id, int(now.timestamp() * 1000)), body.id)
    except StoreError as e:
        # Without an execution the channel could never leave CREATING: undo the create, so the
        # caller can simply retry with the same id.
        ctl.store.discard_new(body.id)
        raise StoreError(f"channel {body.id!r} not created: its lifecycle did not start ({e})") from e
    try:
        item = ctl.store.update(body.id, {"execution_arn": arn}, now=iso(now))
    except StoreError:
        # The channel exists and its execution runs (it parks in IDLE and stores its task token by
        # itself): a 503 now would make a retry hit "id exists". Report it created; the ARN is only
        # a fallback for stopping the execution on delete.
        logger.warning("channel created, but its execution ARN was not recorded",
                       extra={"channel": body.id, "execution_arn": arn})
        return view({**record.to_item(), "execution_arn": arn})
    return view(item)


def _check_parts(part: float, seg: float) -> None:
    if part:
        from ..media.parts import parts_per_segment

        try:
            parts_per_segment(part, seg)
        except ValidationError as e:
            raise ValidationError(f"field 'low_latency.part_duration': {e}") from None


def _check_windows(live: float, dvr: float, seg: float) -> None:
    if live < 3 * seg:
        raise ValidationError(f"field 'live_window': {live}s is under 3 segments of {seg}s (RFC 8216 6.2)")
    if dvr < live:
        raise ValidationError(f"field 'dvr_window': {dvr}s is shorter than live_window {live}s")


def _check_markers(marker_style: str, asset_uri: str, asset_list: str) -> None:
    dialects = hls_dialects(marker_style)
    if "interstitials" in dialects and not (asset_uri or asset_list):
        raise ValidationError("field 'marker_style': interstitials needs the ad to play: set 'ad_asset_uri' (an HLS "
                              "asset) or 'ad_asset_list' (an asset-list URL)")
    if asset_uri and asset_list:
        raise ValidationError("fields 'ad_asset_uri' and 'ad_asset_list': set one, not both")
    if "elemental" in dialects and "scte35_enhanced" in dialects:
        raise ValidationError("field 'marker_style': elemental and scte35_enhanced both write EXT-X-CUE-OUT; "
                              "choose one")


def list_channels(ctl: Control) -> dict[str, Any]:
    return {"channels": [view(r) for r in ctl.store.list_channels()]}


def get_channel(ctl: Control, channel_id: str) -> dict[str, Any]:
    return view(ctl.store.get(validate_id(channel_id)))


def _input_loss(seconds: float | None) -> float:
    """The API's input_loss_wait (absent: the stage's; 0: off) as stored (0: the stage's; negative: off)."""
    if seconds is None:
        return 0.0
    if seconds == 0:
        return -1.0
    if seconds < 0.5:
        raise ValidationError(f"field 'input_loss_wait': {seconds}s; use 0 (off) or 0.5-120 s past a chunk's due time")
    return float(seconds)


def patch_channel(ctl: Control, channel_id: str, body: PatchChannel) -> dict[str, Any]:
    validate_id(channel_id)
    changes = body.changes()
    if "input_loss_wait" in changes:
        given = changes["input_loss_wait"]
        changes["input_loss_wait"] = _input_loss(None if given is None else float(given))  # type: ignore[arg-type]
    current = ctl.store.get(channel_id)
    if not changes:
        return view(current)
    merged = {**view(current), "part_duration": current.part_duration, **changes}
    _check_windows(float(merged["live_window"]), float(merged["dvr_window"]), float(merged["segment_duration"]))
    _check_parts(float(merged["part_duration"] or 0), float(merged["segment_duration"]))
    _check_markers(str(merged["marker_style"]), str(merged.get("ad_asset_uri") or ""),
                   str(merged.get("ad_asset_list") or ""))
    # Encoding fields may only change while nothing is being encoded; the condition makes the
    # check and the write one step, so a concurrent start cannot slip in between.
    expect = (CREATING, IDLE, STOPPED) if ENCODING_FIELDS & changes.keys() else None
    item = ctl.store.update(channel_id, changes, expect_states=expect, now=iso(ctl.clock()))
    if item.get("state") in (STARTING, RUNNING) and MANIFEST_FIELDS & changes.keys():
        # Marker style and windows shape the manifests: show the change now, not a segment later.
        try:
            ctl.republisher.republish(channel_id, f"channel changed: {', '.join(sorted(changes))}")
        except Exception:
            logger.exception("republish after PATCH failed", extra={"channel": channel_id})
    return view(item)


def delete_channel(ctl: Control, channel_id: str) -> dict[str, Any]:
    validate_id(channel_id)
    old = ctl.store.update(
        channel_id,
        {"state": DELETED, "task_token": ""},
        expect_states=(IDLE, STOPPED, ERROR),
        now=iso(ctl.clock()),
        return_old=True,
    )
    try:
        # The event is over: the live playlists get EXT-X-ENDLIST, the MPD its end.
        ctl.finalizer.end(channel_id)
    except Exception:
        logger.exception("ending the live playlists of deleted channel failed")
    token = str(old.get("task_token", ""))
    if not token and old.get("state") != ERROR:
        # Between writing STOPPED/IDLE and parking: its await_command finds DELETED and ends itself.
        return {"id": channel_id, "state": DELETED}
    try:
        ctl.lifecycle.send_command(token, "delete")
    except (StaleTokenError, StoreError):
        # The channel is gone for the API already; an execution that cannot be told is stopped.
        try:
            ctl.lifecycle.stop(str(old.get("execution_arn", "")), "channel deleted")
        except StoreError:
            logger.warning("could not stop the execution of a deleted channel", extra={"channel": channel_id})
    return {"id": channel_id, "state": DELETED}


def start_channel(ctl: Control, channel_id: str) -> dict[str, Any]:
    """A start is a new run: its own segment URLs (`{rendition}/r{N}/...`), the same playlist URLs."""
    validate_id(channel_id)
    current = ctl.store.get(channel_id)
    if current.state == STOPPING:
        raise ConflictError(f"channel {channel_id!r} is still STOPPING (its run is being sealed and published as "
                            "VOD); start it again once it is STOPPED")
    return _command(ctl, channel_id, "start", STARTING, _PARKED, counters=("run_no",))


def stop_channel(ctl: Control, channel_id: str) -> dict[str, Any]:
    return _command(ctl, channel_id, "stop", STOPPING, (RUNNING,))


def _command(ctl: Control, channel_id: str, command: str, to: str, expect: tuple[str, ...],
             counters: tuple[str, ...] = ()) -> dict[str, Any]:
    validate_id(channel_id)
    now = iso(ctl.clock())
    # Claim the transition and take the token in ONE conditional write (ALL_OLD returns the
    # token that was stored at that instant): of two concurrent commands exactly one wins here,
    # the other gets 409.
    old = ctl.store.update(
        channel_id, {"state": to, "task_token": "", "error": ""}, expect_states=expect, now=now, return_old=True,
        counters=counters,
    )
    previous, token = str(old["state"]), str(old.get("task_token", ""))
    try:
        if token:
            ctl.lifecycle.send_command(token, command)
        # No token yet: the execution is between writing the state and parking; its
        # await_command sees the claimed state and completes itself with this command.
    except StaleTokenError:
        if previous in _PARKED:
            _rollback(ctl, channel_id, to, old)
            raise StoreError(
                f"channel {channel_id!r}: its lifecycle execution is not waiting for commands; "
                "nothing was changed"
            ) from None
        # RUNNING rotates its token every watchdog tick; the next tick's await_command sees the
        # claimed state and completes itself with the pending command, so the command lands.
    except StoreError:
        _rollback(ctl, channel_id, to, old)
        raise
    return view({**old, "state": to, "task_token": "", "error": "", "updated_at": now})


def _rollback(ctl: Control, channel_id: str, claimed: str, old: dict[str, Any]) -> None:
    """Put back state, token and error as they were: if the execution is still parked (say Step
    Functions was throttled), the restored token lets the operator's retry reach it."""
    previous = str(old["state"])
    try:
        ctl.store.transition(
            channel_id, previous, (claimed,), now=iso(ctl.clock()),
            task_token=str(old.get("task_token", "")), error=str(old.get("error", "")),
        )
    except Exception:  # the lifecycle moved on in the meantime: its state wins
        logger.warning("rollback skipped: the lifecycle moved on",
                       extra={"channel": channel_id, "claimed": claimed, "previous": previous})


def status(ctl: Control, channel_id: str) -> dict[str, Any]:
    validate_id(channel_id)
    raw = ctl.store.get_raw(channel_id)
    if raw is None or raw.get("state") == DELETED:
        raise NotFoundError(f"channel {channel_id!r} not found")
    r = ChannelRecord.from_item(raw)
    now = ctl.clock()
    age = None
    if r.last_segment_at:
        age = max(0.0, (now - parse_iso(r.last_segment_at)).total_seconds())
    # Rough glass-to-glass estimate for a player holding 3 segments back from the live edge.
    latency = None if age is None else round(age + 3 * r.segment_duration, 3)
    current = r.last_seq >= 0 and r.last_run == r.run_no  # last_seq of an earlier run is not news
    return {
        "id": r.id,
        "state": r.state,
        "run": r.run_no or None,
        "last_segment": None
        if not current
        else {"seq": r.last_seq, "received_at": r.last_segment_at or None, "age_seconds": age},
        "latency_seconds": latency if current else None,
        "input_lost_since": raw.get("input_lost_at") or None,
        "errors": {"count": r.errors, "last": r.error or None},
        "late_chunks": {"count": int(raw.get("late_chunks", 0) or 0), "last": raw.get("late_chunks_last") or None},
        "slate_segments": {"count": int(raw.get("slate_segments", 0) or 0),
                           "last": raw.get("slate_segments_last") or None},
        # In-band SCTE-35 sections that failed their CRC or did not decode (the chunk still played).
        "dropped_cues": {"count": int(raw.get("dropped_cues", 0) or 0), "last": raw.get("dropped_cues_last") or None},
        "started_at": r.started_at or None,
        "updated_at": r.updated_at,
    }


def ingest_urls(ctl: Control, channel_id: str, body: IngestUrlsRequest) -> dict[str, Any]:
    validate_id(channel_id)
    r = ctl.store.get(channel_id)
    if r.state in (STOPPING, ERROR):
        raise ConflictError(f"channel {channel_id!r} is {r.state}; it does not accept uploads now")
    s = ctl.settings
    if body.first_seq + body.count > MAX_SEQ:
        raise ValidationError(f"field 'count': seqs {body.first_seq}..{body.first_seq + body.count - 1} reach past "
                              f"the highest chunk number ingest accepts ({MAX_SEQ - 1})")
    if body.parts and body.count * body.parts > MAX_INGEST_URLS:
        raise ValidationError(f"field 'count': {body.count} seqs x {body.parts} parts is more than "
                              f"{MAX_INGEST_URLS} URLs; ask for fewer seqs at a time")
    expires = ctl.clock() + timedelta(seconds=s.ingest_url_ttl)
    urls = []
    for seq in range(body.first_seq, body.first_seq + body.count):
        for part in range(body.parts) if body.parts else (-1,):
            name = f"{seq:08d}.{part}" if part >= 0 else f"{seq:08d}"
            key = f"{channel_id}/{name}.{body.extension}"
            entry: dict[str, Any] = {"seq": seq, "key": key, "method": "PUT", "url": ctl.presigner.presign_put(
                s.ingest_bucket, key, s.ingest_url_ttl)}
            if part >= 0:
                entry["part"] = part
            urls.append(entry)
    return {"channel_id": channel_id, "expires_at": iso(expires), "urls": urls}


PLAYBACK_MODES = ("cookie", "query")


def playback(ctl: Control, channel_id: str, mode: str | None = None) -> dict[str, Any]:
    """The channel's manifest URLs; on a signing stage also one custom-policy grant over
    `{base}/{channel}/*`, carried the way the viewer asked:

    - `cookie` (default): CloudFront-Policy / -Signature / -Key-Pair-Id cookies scoped to the
      channel's path (also listed in the body for clients that set cookies themselves);
    - `query`: the signature as a query string. It is on the returned URLs and in `query`; the
      player appends `query` to every request it makes (variant playlists, segments), because
      playlists are shared, cached objects that cannot carry one viewer's signature."""
    validate_id(channel_id)
    mode = mode or "cookie"
    if mode not in PLAYBACK_MODES:
        raise ValidationError(f"query parameter 'mode': {mode!r} is not one of {', '.join(PLAYBACK_MODES)}")
    record = ctl.store.get(channel_id)
    base = f"{ctl.settings.playback_base_url}/{channel_id}"
    urls = {"hls": f"{base}/master.m3u8", "dash": f"{base}/manifest.mpd", "dvr": f"{base}/dvr.m3u8"}
    if record.part_duration:
        # Low-Latency HLS, rendered per request by the LL origin (chalicelib.pipeline.llorigin).
        urls["ll_hls"] = f"{base}/ll.m3u8"
    if record.state in (STOPPED, IDLE) and record.run_no > 0:
        # The last run, published as VOD when it stopped (its own URLs, written once).
        run = run_name(record.run_no)
        urls.update({"vod_hls": f"{base}/vod-{run}.m3u8", "vod_dash": f"{base}/vod-{run}.mpd"})
    out: dict[str, Any] = {"channel_id": channel_id, "signed": ctl.signer is not None, **urls}
    if ctl.signer is None:
        return out
    expires = ctl.clock() + timedelta(seconds=ctl.signed_url_ttl)
    grant = ctl.signer.grant(f"{base}/*", expires)
    out.update(mode=mode, resource=grant.resource, key_pair_id=grant.key_pair_id, expires_at=iso(expires))
    if mode == "query":
        out.update({k: f"{v}?{grant.query()}" for k, v in urls.items()})
        out["query"] = grant.query()
    else:
        out["cookies"] = grant.cookies()
        out["set_cookie"] = _set_cookie_headers(grant, base, ctl.settings.playback_cookie_domain)
    return out


def _set_cookie_headers(grant: PlaybackGrant, base: str, domain: str) -> list[str]:
    """Set-Cookie values for a browser. Path scopes them to the channel, so one viewer can hold
    grants for several channels; cross-site players (credentials: include) need SameSite=None,
    which browsers accept only with Secure, so plain-http (local) origins get Lax."""
    parts = urlsplit(base)
    secure = parts.scheme == "https"
    attrs = [f"Path={parts.path or ''}/", f"Expires={format_datetime(grant.expires_at, usegmt=True)}", "HttpOnly",
             "Secure; SameSite=None" if secure else "SameSite=Lax"]
    if domain:
        attrs.append(f"Domain={domain}")
    return [f"{name}={value}; " + "; ".join(attrs) for name, value in grant.cookies().items()]
