"""The bodies a webhook receives, built from the events kept in the outbox.

`distribution`: CNCF Distribution's notification envelope, `{"events": [...]}` with its media
type, so that consumers written for Distribution work unchanged (several events per request).
`cloudevents`: one CloudEvents 1.0 event per request, in structured JSON mode.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from dockyard.metadata.base import OutboxEvent

DISTRIBUTION_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
CLOUDEVENTS_MEDIA_TYPE = "application/cloudevents+json; charset=utf-8"
FORMATS = ("distribution", "cloudevents")
ACTIONS = ("push", "delete", "pull")
# One request carries at most this many events in Distribution's envelope.
ENVELOPE_EVENTS = 100


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _target(fields: dict[str, Any], base_url: str) -> dict[str, Any]:
    repository = fields["repository"]
    target: dict[str, Any] = {}
    if "mediaType" in fields:
        target["mediaType"] = fields["mediaType"]
    if "digest" in fields:
        target["digest"] = fields["digest"]
    if "size" in fields:
        # Distribution sends both; `length` is its older name.
        target["size"] = target["length"] = fields["size"]
    target["repository"] = repository
    if "digest" in fields and fields["action"] != "delete":
        target["url"] = f"{base_url}/v2/{repository}/manifests/{fields['digest']}"
    if "tag" in fields:
        target["tag"] = fields["tag"]
    return target


def distribution_event(
    fields: dict[str, Any], base_url: str, source_addr: str, instance_id: str
) -> dict[str, Any]:
    origin = fields.get("origin") or {}
    event = {
        "id": fields["id"],
        "timestamp": rfc3339(fields["timestamp"]),
        "action": fields["action"],
        "target": _target(fields, base_url),
        "request": {
            "id": origin.get("request_id", ""),
            "addr": origin.get("addr", ""),
            "host": origin.get("host", ""),
            "method": origin.get("method", ""),
            "useragent": origin.get("useragent", ""),
        },
        "actor": {"name": origin["actor"]} if origin.get("actor") else {},
        "source": {"addr": source_addr, "instanceID": instance_id},
    }
    if "count" in fields:
        # A pull event stands for this many pulls by the same client within a window (the
        # timestamp and request are the first's); not in Distribution's format, whose
        # consumers ignore what they do not know.
        event["count"] = fields["count"]
    return event


def cloudevent(fields: dict[str, Any], base_url: str) -> dict[str, Any]:
    subject = fields["repository"]
    if "tag" in fields:
        subject += ":" + fields["tag"]
    elif "digest" in fields:
        subject += "@" + fields["digest"]
    data = _target(fields, base_url)
    origin = fields.get("origin") or {}
    if origin.get("actor"):
        data["actor"] = origin["actor"]
    if "count" in fields:
        data["count"] = fields["count"]
    return {
        "specversion": "1.0",
        "id": fields["id"],
        "source": base_url,
        "type": f"io.dockyard.image.{fields['action']}",
        "subject": subject,
        "time": rfc3339(fields["timestamp"]),
        "datacontenttype": "application/json",
        "data": data,
    }


def body(
    format: str,
    events: Sequence[OutboxEvent],
    base_url: str,
    source_addr: str,
    instance_id: str,
) -> tuple[bytes, str]:
    """The request body for `events` (one, for CloudEvents) and its content type."""
    if format == "cloudevents":
        document: Any = cloudevent(events[0].fields, base_url)
        media_type = CLOUDEVENTS_MEDIA_TYPE
    else:
        document = {
            "events": [
                distribution_event(e.fields, base_url, source_addr, instance_id) for e in events
            ]
        }
        media_type = DISTRIBUTION_MEDIA_TYPE
    return json.dumps(document, separators=(",", ":")).encode(), media_type


def batch_size(format: str) -> int:
    return 1 if format == "cloudevents" else ENVELOPE_EVENTS
