"""A probe result and its classification, as MailProvider status shows them. Pure; no secret inside.

The result carries no credential (the probe masks them), and only these fields are copied: stage
names, durations and server replies, EHLO keywords, TLS facts.
"""

from __future__ import annotations

from typing import Any

from postmaster.checks.smtp import Classification, ProbeResult
from postmaster.conditions import Cond
from postmaster.statuses import SMTP_REACHABLE, ProbeView

_MAX_TEXT = 300


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _keywords(keywords: dict[str, str]) -> list[str]:
    return [f"{k} {v}".strip() for k, v in sorted(keywords.items())]


def probe_summary(result: ProbeResult, verdict: Classification, now: str) -> dict[str, Any]:
    ehlo = result.ehlo_after_tls or result.ehlo
    summary: dict[str, Any] = {
        "lastProbeTime": now,
        "outcome": verdict.reason.value,
        "message": _clip(verdict.message),
        "transient": verdict.transient,
        "needsPerson": verdict.needs_person,
        "durationMs": round(result.duration_ms, 1),
        "stages": [
            {
                k: v
                for k, v in {
                    "name": stage.name.value,
                    "ok": stage.ok,
                    "durationMs": round(stage.duration_ms, 1),
                    "reply": _clip(str(stage.reply)) if stage.reply else None,
                    "error": _clip(stage.error),
                }.items()
                if v is not None
            }
            for stage in result.stages
        ],
    }
    if result.banner is not None:
        summary["banner"] = _clip(str(result.banner))
    if ehlo is not None:
        summary["extensions"] = _keywords(ehlo.keywords)
    if result.ehlo_after_tls is not None and result.ehlo is not None:
        summary["extensionsBeforeTls"] = _keywords(result.ehlo.keywords)
    tls = result.tls
    if tls is not None and (tls.version or tls.certificate):
        cert = tls.certificate
        summary["tls"] = {
            k: v
            for k, v in {
                "version": tls.version,
                "cipher": tls.cipher,
                "subject": cert.subject if cert else None,
                "issuer": cert.issuer if cert else None,
                "sans": list(cert.sans) if cert else [],
                "notAfter": cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ") if cert else None,
                "daysLeft": cert.days_left if cert else None,
                "hostnameMatched": tls.hostname_matched,
                "chainVerified": tls.chain_verified,
            }.items()
            if v is not None
        }
    return summary


def probe_view(result: ProbeResult, verdict: Classification, now: str) -> ProbeView:
    status = verdict.status if verdict.status in ("True", "False", "Unknown") else "Unknown"
    message = verdict.message
    if verdict.warnings:
        message = f"{message} Warnings: {' '.join(verdict.warnings)}"
    condition = Cond(SMTP_REACHABLE, status, verdict.reason.value, message)  # type: ignore[arg-type]
    return ProbeView(condition, probe_summary(result, verdict, now), verdict.needs_person)
