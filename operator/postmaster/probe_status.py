"""A probe result and its classification, as MailProvider status shows them. Pure; no secret inside.

The result carries no credential (the probe masks them), and only these fields are copied: stage names,
durations and server replies, EHLO keywords, TLS facts.
"""

from __future__ import annotations

from postmaster.api.mailprovider import ProbeStageStatus, ProbeStatus, ProbeTLSStatus
from postmaster.checks.smtp import Classification, ProbeResult
from postmaster.conditions import Stamp
from postmaster.statuses import SMTP_REACHABLE, ProbeOutcome

_MAX_TEXT = 300


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _keywords(keywords: dict[str, str]) -> list[str]:
    return [f"{k} {v}".strip() for k, v in sorted(keywords.items())]


def probe_summary(result: ProbeResult, verdict: Classification, now: str) -> ProbeStatus:
    ehlo = result.ehlo_after_tls or result.ehlo
    summary = ProbeStatus(
        last_probe_time=now,
        outcome=verdict.reason.value,
        message=_clip(verdict.message),
        transient=verdict.transient,
        needs_person=verdict.needs_person,
        duration_ms=round(result.duration_ms, 1),
        stages=[
            ProbeStageStatus(
                name=stage.name.value,
                ok=stage.ok,
                duration_ms=round(stage.duration_ms, 1),
                reply=_clip(str(stage.reply)) if stage.reply else None,
                error=_clip(stage.error),
            )
            for stage in result.stages
        ],
    )
    if result.banner is not None:
        summary.banner = _clip(str(result.banner))
    if ehlo is not None:
        summary.extensions = _keywords(ehlo.keywords)
    if result.ehlo_after_tls is not None and result.ehlo is not None:
        summary.extensions_before_tls = _keywords(result.ehlo.keywords)
    tls = result.tls
    if tls is not None and (tls.version or tls.certificate):
        cert = tls.certificate
        summary.tls = ProbeTLSStatus(
            version=tls.version,
            cipher=tls.cipher,
            subject=cert.subject if cert else None,
            issuer=cert.issuer if cert else None,
            sans=list(cert.sans) if cert else [],
            not_after=cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ") if cert else None,
            days_left=cert.days_left if cert else None,
            hostname_matched=tls.hostname_matched,
            chain_verified=tls.chain_verified,
        )
    return summary


def probe_outcome(result: ProbeResult, verdict: Classification, stamp: Stamp) -> ProbeOutcome:
    status = verdict.status if verdict.status in ("True", "False", "Unknown") else "Unknown"
    message = verdict.message
    if verdict.warnings:
        message = f"{message} Warnings: {' '.join(verdict.warnings)}"
    condition = stamp.condition(SMTP_REACHABLE, status, verdict.reason.value, message)  # type: ignore[arg-type]
    return ProbeOutcome(condition, probe_summary(result, verdict, stamp.now))


def same_facts(a: ProbeStatus | None, b: ProbeStatus | None) -> bool:
    """Whether two probe summaries tell the same story: timings and the probe's time aside. A probe that
    found what the last one found is not written again (an idle cluster costs no writes)."""
    if a is None or b is None:
        return a is b

    def facts(s: ProbeStatus) -> ProbeStatus:
        stages = [stage.model_copy(update={"duration_ms": None}) for stage in s.stages]
        return s.model_copy(update={"last_probe_time": None, "duration_ms": None, "stages": stages})

    return facts(a) == facts(b)
