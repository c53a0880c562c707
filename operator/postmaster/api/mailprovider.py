"""MailProvider: one SMTP service a namespace sends through."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from postmaster.api.common import (
    HOST_PATTERN,
    SINGLE_LINE_PATTERN,
    CommonStatus,
    ConfigMapKeySelector,
    DataKey,
    Duration,
    EmailAddress,
    Model,
    ObjectName,
    SecretKeySelector,
    StatusModel,
)
from postmaster.providers.catalog import Preset


class TLSMode(StrEnum):
    """How the connection is encrypted: STARTTLS upgrade (587), implicit TLS (465) or none (25)."""

    STARTTLS = "starttls"
    IMPLICIT = "implicit"
    NONE = "none"


class AuthMethod(StrEnum):
    PLAIN = "plain"
    LOGIN = "login"
    CRAM_MD5 = "cram-md5"
    XOAUTH2 = "xoauth2"
    NONE = "none"


class CredentialsSecretRef(Model):
    """The Secret holding the SMTP username and password (or API key / token used as password)."""

    name: ObjectName = Field(description="Name of the Secret in the MailProvider's namespace.")
    username_key: DataKey = Field(
        default="username",
        description=(
            "Key holding the username. Default: username. When the key is absent the preset's convention "
            "applies (SendGrid: apikey; Gmail, Microsoft 365: the from address)."
        ),
    )
    password_key: DataKey = Field(default="password", description="Key holding the password. Default: password.")


class OAuth2ClientCredentials(Model):
    """OAuth2 client-credentials flow: the operator fetches and refreshes the access token."""

    token_url: str = Field(
        pattern=r"^https?://[^\s]+$",
        description="The identity provider's token endpoint, e.g. "
        "https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token.",
        alias="tokenURL",
    )
    client_id: str = Field(min_length=1, pattern=SINGLE_LINE_PATTERN, description="The application (client) id.")
    client_secret_ref: SecretKeySelector = Field(description="The Secret key holding the client secret.")
    scope: str | None = Field(
        default=None,
        pattern=SINGLE_LINE_PATTERN,
        description="Scope to request. Default from the preset (Microsoft 365: https://outlook.office365.com/.default).",
    )


class OAuth2(Model):
    """Where the XOAUTH2 bearer token comes from: a Secret, or the client-credentials flow. Exactly one."""

    token_secret_ref: SecretKeySelector | None = Field(
        default=None, description="A Secret key holding a current access token, kept fresh by something else."
    )
    client_credentials: OAuth2ClientCredentials | None = Field(
        default=None, description="Fetch tokens with the OAuth2 client-credentials grant."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> OAuth2:
        if (self.token_secret_ref is None) == (self.client_credentials is None):
            raise ValueError(
                "set exactly one of spec.auth.oauth2.tokenSecretRef and spec.auth.oauth2.clientCredentials"
            )
        return self


class Auth(Model):
    """How the operator and the relay authenticate to the provider."""

    method: AuthMethod | None = Field(
        default=None, description="SASL mechanism: plain, login, cram-md5, xoauth2 or none. Default from the preset."
    )
    username: str | None = Field(
        default=None,
        min_length=1,
        max_length=320,
        pattern=r"^[^\s:]+$",
        description="Username, when it is not in the Secret (no spaces, no colon). Overrides the preset convention.",
    )
    credentials_secret_ref: CredentialsSecretRef | None = Field(
        default=None, description="Secret with the password (and optionally the username)."
    )
    oauth2: OAuth2 | None = Field(default=None, description="Token source when method is xoauth2.")


class Sender(Model):
    """The envelope and header sender applications use by default."""

    address: EmailAddress = Field(description="Sender address, e.g. notifications@example.com.")
    display_name: str | None = Field(
        default=None, max_length=200, pattern=SINGLE_LINE_PATTERN, description="Display name, e.g. Example Alerts."
    )


class RateLimit(Model):
    """How many messages may be sent per period (Microsoft 365: 30 per 1m)."""

    messages: int = Field(ge=1, le=1_000_000, description="Messages allowed per period.")
    per: Duration = Field(default="1m", description="The period, e.g. 1m or 1h. Default: 1m.")


class ProbeSpec(Model):
    """How the operator checks the provider's SMTP service. The probe never sends a message."""

    enabled: bool = Field(default=True, description="Run the periodic probe. Default: true.")
    interval: Duration = Field(default="10m", description="Time between probes. Default: 10m.")
    timeout: Duration = Field(default="30s", description="Timeout of each network step. Default: 30s.")
    mail_from: EmailAddress | None = Field(
        default=None, description="MAIL FROM used by the probe. Default: from.address."
    )
    rcpt_to: EmailAddress | None = Field(
        default=None, description="Optional RCPT TO the probe checks (no message is sent)."
    )
    test_email_min_interval: Duration = Field(
        default="1h", description="Minimum time between two on-demand test emails. Default: 1h."
    )
    probe_now_min_interval: Duration = Field(
        default="1m", description="Minimum time between two on-demand probes (postmaster.dev/probe-now). Default: 1m."
    )


class MailProviderSpec(Model):
    """The desired state of a MailProvider. Explicit fields override the preset."""

    preset: Preset = Field(
        default=Preset.CUSTOM,
        description=(
            "Fill host, port, TLS mode, username convention, limits and SPF facts from the catalog. Default: custom."
        ),
    )
    region: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$",
        description="Provider region, required by preset ses (e.g. eu-west-1).",
    )
    host: str | None = Field(
        default=None,
        max_length=253,
        pattern=HOST_PATTERN,
        description="SMTP host name or IP address: no scheme, no port, no slash. Default from the preset.",
    )
    port: int | None = Field(default=None, ge=1, le=65535, description="SMTP port (1-65535). Default from the preset.")
    tls: TLSMode | None = Field(
        default=None,
        description="starttls (port 587), implicit (port 465, SMTPS) or none. Default from the preset, else starttls.",
    )
    tls_verify: bool = Field(default=True, description="Verify the server certificate and host name. Default: true.")
    ca_bundle_ref: ConfigMapKeySelector | None = Field(
        default=None, description="ConfigMap key with PEM CA certificates to trust instead of the system store."
    )
    auth: Auth | None = Field(default=None, description="Authentication. Default: the preset's method.")
    sender: Sender = Field(alias="from", description="Default sender address and display name.")
    rate_limit: RateLimit | None = Field(
        default=None, description="Messages per period the relay keeps to. Default from the preset."
    )
    daily_limit: int | None = Field(
        default=None, ge=1, description="Messages per day the provider allows. Default from the preset."
    )
    probe: ProbeSpec = Field(default_factory=ProbeSpec, description="SMTP probe settings.")


class ProviderEndpointStatus(StatusModel):
    """The connection the operator resolved from the spec and the preset."""

    host: str | None = None
    port: int | None = None
    tls: str | None = None
    auth_method: str | None = None


class MailProviderOutputs(StatusModel):
    """Objects the operator writes for this provider."""

    secret: str | None = Field(default=None, description="Secret with the connection details for applications.")
    relay_config_map: str | None = Field(default=None, description="ConfigMap with the Postfix relay configuration.")
    relay_secret: str | None = Field(default=None, description="Secret with the relay's sasl_passwd table.")


class ProbeStageStatus(StatusModel):
    """One stage of the probe: connect, banner, ehlo, starttls, auth, mail-from, ..."""

    name: str
    ok: bool
    duration_ms: float | None = None
    reply: str | None = Field(default=None, description="The server's reply: code, enhanced status code, text.")
    error: str | None = None


class ProbeTLSStatus(StatusModel):
    """What the TLS handshake showed."""

    version: str | None = None
    cipher: str | None = None
    subject: str | None = None
    issuer: str | None = None
    sans: list[str] = Field(default_factory=list)
    not_after: str | None = None
    days_left: int | None = None
    hostname_matched: bool | None = None
    chain_verified: bool | None = None


class ProbeStatus(StatusModel):
    """The last SMTP probe: no message is sent, the session stops after MAIL FROM (and RCPT TO)."""

    last_probe_time: str | None = Field(
        default=None,
        description=(
            "When the probe that found what this summary says ran. Later probes that find the same (timings "
            "aside) are not written."
        ),
    )
    outcome: str | None = Field(default=None, description="Succeeded, or the reason of the failure.")
    message: str | None = None
    transient: bool | None = Field(default=None, description="A retry may succeed without any change.")
    needs_person: bool | None = Field(default=None, description="Only a change by a person can fix it.")
    duration_ms: float | None = None
    banner: str | None = None
    extensions: list[str] = Field(default_factory=list, description="EHLO keywords (after TLS when TLS is used).")
    extensions_before_tls: list[str] = Field(
        default_factory=list, description="EHLO keywords before STARTTLS (AUTH is often offered only after it)."
    )
    stages: list[ProbeStageStatus] = Field(default_factory=list)
    tls: ProbeTLSStatus | None = None


class OnDemandStatus(StatusModel):
    """The last on-demand request of one kind (postmaster.dev/probe-now or postmaster.dev/send-test-to)."""

    request: str | None = Field(default=None, description="The annotation value last handled.")
    handled_time: str | None = None
    accepted: bool | None = None
    outcome: str | None = Field(default=None, description="Sent, Probing, Throttled, or the failure reason.")
    message: str | None = None
    queue_id: str | None = Field(default=None, description="The server's id of the queued test message.")
    last_accepted_time: str | None = None
    next_allowed_time: str | None = Field(default=None, description="When the next request will be accepted.")


class MailProviderStatus(CommonStatus):
    """Observed state of a MailProvider.

    Conditions: `Ready` (outputs written, credentials resolved and the SMTP probe passed),
    `CredentialsResolved` (the Secrets and keys exist), `SMTPReachable` (the last probe's verdict; Unknown
    while a transient failure is retried), `Reconciling`, `Stalled` (a person must change the spec, the
    Secret or the account).
    """

    endpoint: ProviderEndpointStatus | None = Field(default=None, description="The resolved connection.")
    outputs: MailProviderOutputs | None = Field(default=None, description="Objects written for this provider.")
    probe: ProbeStatus | None = Field(default=None, description="The last SMTP probe.")
    probe_request: OnDemandStatus | None = Field(default=None, description="The last postmaster.dev/probe-now.")
    test_email: OnDemandStatus | None = Field(default=None, description="The last postmaster.dev/send-test-to.")
