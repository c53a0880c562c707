"""Building blocks shared by the three custom resources.

Every model here is frozen, camelCase on the wire and forbids unknown fields: the API server prunes
unknown fields before the operator sees them, so an unknown field reaching pydantic is a bug.
Patterns are written in the common subset of Go's RE2 (the API server) and Rust's regex (pydantic),
so the same rule is enforced at admission and again when the operator parses the object.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# A DNS name (RFC 1123 labels, optional trailing dot) or an IPv4 / IPv6 literal. No scheme, no path,
# no port, no whitespace: `http://smtp.example.com/` and `smtp.example.com:587` are both refused.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_PATTERN = rf"^{_LABEL}(?:\.{_LABEL})*\.?$"
_IPV4 = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
_IPV6 = r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*"
HOST_PATTERN = rf"^(?:{_LABEL}(?:\.{_LABEL})*\.?|{_IPV4}|{_IPV6})$"
# A domain that mail is sent from: at least two labels, no trailing dot.
DOMAIN_PATTERN = rf"^{_LABEL}(?:\.{_LABEL})+$"
# An RFC 5321 mailbox in its common dot-atom form. Quoted local parts are refused on purpose: they
# cannot be written safely into every relay table, and no provider asks for them.
EMAIL_PATTERN = rf"^[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~-]+)*@{_LABEL}(?:\.{_LABEL})+$"
# A Kubernetes object name (DNS subdomain) and a Secret / ConfigMap data key.
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DATA_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
# Durations as people write them in manifests: 30s, 10m, 1h, 180d, 1h30m.
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
# One line of text: nothing that could end a header or a configuration line.
SINGLE_LINE_PATTERN = r"^[^\r\n]*$"

_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`1h30m` -> 5400 s. The text has passed DURATION_PATTERN at admission and in the model."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration such as 30s, 10m, 1h or 180d")
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text)))


Duration = Annotated[str, Field(pattern=DURATION_PATTERN, json_schema_extra={"example": "10m"})]
ObjectName = Annotated[str, Field(pattern=OBJECT_NAME_PATTERN, min_length=1, max_length=253)]
DataKey = Annotated[str, Field(pattern=DATA_KEY_PATTERN, min_length=1, max_length=253)]
EmailAddress = Annotated[str, Field(pattern=EMAIL_PATTERN, max_length=254)]
DomainName = Annotated[str, Field(pattern=DOMAIN_PATTERN, max_length=253)]


class Model(BaseModel):
    """Base of every spec model: frozen, camelCase aliases, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        use_enum_values=False,
    )


class StatusModel(BaseModel):
    """Base of status models: tolerant of fields written by newer operator versions."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class LocalObjectReference(Model):
    """A reference to another object in the same namespace."""

    name: ObjectName = Field(description="Name of the object in the same namespace.")


class SecretKeySelector(Model):
    """One key of a Secret in the same namespace."""

    name: ObjectName = Field(description="Name of the Secret in the same namespace.")
    key: DataKey = Field(description="Key inside the Secret's data.")


class ConfigMapKeySelector(Model):
    """One key of a ConfigMap in the same namespace."""

    name: ObjectName = Field(description="Name of the ConfigMap in the same namespace.")
    key: DataKey = Field(default="ca.crt", description="Key inside the ConfigMap's data. Default: ca.crt.")


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """A condition per the Kubernetes API conventions (metav1.Condition)."""

    type: str = Field(description="Condition type, CamelCase, e.g. Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="Stable CamelCase reason for the last transition.")
    message: str = Field(default="", description="What happened and what to do, for people.")
    last_transition_time: str = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation the condition was computed from."
    )


class CommonStatus(StatusModel):
    """Fields every Postmaster status carries."""

    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation the operator last reconciled."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Latest observations of the object's state; see the README's conditions table.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
