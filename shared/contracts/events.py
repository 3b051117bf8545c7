"""Every event's payload (the envelope's ``data``) as a pydantic model, and the webhook bodies.

A payload class names its event type in ``TYPE``; producers build the payload and hand it to
:func:`shared.outbox.add_event`, consumers parse with :func:`parse_event`. Models ignore fields they
do not know (a newer producer may add one); a missing or wrong field is a :class:`MalformedEvent`.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationError, WithJsonSchema

from shared.contracts.recipients import RecipientKind
from shared.directory import OrganizationType
from shared.events import EventEnvelope

# Moments keep the form ``datetime.isoformat()`` gives (``+00:00``), as every event always had; the
# serializer would hide that the string is a date-time, so the schema says it.
Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]
Kommunenummer = Annotated[str, Field(pattern=r"^\d{4}$")]

CaseStatus = Literal["intake", "planning", "release_ready", "released", "follow_up", "closed"]
ReleaseDestination = Literal[
    "municipality", "abroad", "deportation", "treatment_institution", "home_detention"
]
MunicipalityStatus = Literal["unresolved", "proposed", "confirmed", "kommunelos", "disputed"]
ReleaseDateCertainty = Literal["estimated", "probable", "certain"]
NoticeKind = Literal["milestone", "change"]
EndpointState = Literal["active", "disabled"]
KeyKind = Literal["hmac", "ed25519"]
AgreementStatus = Literal["draft", "negotiating", "signed", "active", "under_review", "expired", "terminated"]


class MalformedEvent(ValueError):
    """An event whose ``data`` does not match its type's model: it is dead-lettered, never retried."""

    def __init__(self, event: EventEnvelope, error: ValidationError) -> None:
        self.event_id = event.id
        self.event_type = event.type
        # Locations and messages only: the offending values could be personal data.
        self.errors = [
            f"{'.'.join(str(part) for part in item['loc']) or 'data'}: {item['msg']}"
            for item in error.errors()
        ]
        super().__init__(f"{event.type} {event.id}: " + "; ".join(self.errors))


class EventPayload(BaseModel):
    """Base of every payload. ``TYPE`` is the versioned event type (also the routing key),
    ``TITLE`` a short name, ``PRODUCER`` the service that publishes it. In the AsyncAPI document
    (``tilbake asyncapi``) the docstring's first paragraph is the event's summary and the whole
    docstring its description; the docstrings of the payload's base classes say what the payload
    carries."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    TYPE: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    PRODUCER: ClassVar[str] = ""
    ON_BUS: ClassVar[bool] = True  # False: a webhook body, POSTed to a receiver and never published

    def data(self) -> dict[str, Any]:
        """The envelope's ``data``: JSON types, without optional fields that were never set."""
        return self.model_dump(mode="json", exclude_unset=True)


# --- case-api ------------------------------------------------------------------------------------


class CaseFacts(EventPayload):
    """Every case event carries these so a consumer can act without another call. No names, no
    identity numbers."""

    PRODUCER: ClassVar[str] = "case-api"

    case_id: uuid.UUID
    status: CaseStatus
    current_unit_id: uuid.UUID
    region_id: uuid.UUID | None
    release_destination: ReleaseDestination
    responsible_kommunenummer: Kommunenummer | None
    municipality_status: MunicipalityStatus
    nav_office_id: uuid.UUID | None
    effective_release_date: date | None = Field(description="Confirmed release date, else the expected one.")


class CaseOpened(CaseFacts):
    """A case was opened for an inmate."""

    TYPE: ClassVar[str] = "case.opened.v1"
    TITLE: ClassVar[str] = "Case opened"

    planning_basis: Literal["final_judgment", "remand_request"]
    opened_at: Timestamp


class CaseUpdated(CaseFacts):
    """Priority groups, release destination or NAV office changed."""

    TYPE: ClassVar[str] = "case.updated.v1"
    TITLE: ClassVar[str] = "Case changed"

    changed: list[str] = Field(description="Names of the fields that changed.")


class CaseStatusChanged(CaseFacts):
    """The case moved along its lifecycle."""

    TYPE: ClassVar[str] = "case.status_changed.v1"
    TITLE: ClassVar[str] = "Status changed"

    old_status: CaseStatus
    new_status: CaseStatus
    reason: str | None = None


class CaseClosed(CaseFacts):
    """The case was closed; pending notices are cancelled."""

    TYPE: ClassVar[str] = "case.closed.v1"
    TITLE: ClassVar[str] = "Case closed"

    old_status: CaseStatus
    reason: str | None = None


class CaseTransferred(CaseFacts):
    """The whole case moved to another unit."""

    TYPE: ClassVar[str] = "case.transferred.v1"
    TITLE: ClassVar[str] = "Case transferred"

    from_unit_id: uuid.UUID
    to_unit_id: uuid.UUID
    reason: str | None = None


class CaseReleaseDateChanged(CaseFacts):
    """A release date of some kind was set or moved (old and new)."""

    TYPE: ClassVar[str] = "case.release_date_changed.v1"
    TITLE: ClassVar[str] = "Release date changed"

    kind: Literal["earliest", "two_thirds", "expected", "confirmed"]
    old_date: date | None
    new_date: date
    certainty: ReleaseDateCertainty
    source: str
    old_effective_release_date: date | None
    new_effective_release_date: date | None


class CaseMunicipalityChanged(CaseFacts):
    """The responsible municipality or its resolution status changed."""

    TYPE: ClassVar[str] = "case.municipality_changed.v1"
    TITLE: ClassVar[str] = "Responsible municipality changed"

    old_responsible_kommunenummer: Kommunenummer | None
    new_responsible_kommunenummer: Kommunenummer | None
    old_municipality_status: MunicipalityStatus
    new_municipality_status: MunicipalityStatus


class _ConsentScope(CaseFacts):
    consent_id: uuid.UUID
    basis: Literal["consent", "legal_basis"]
    organization_ids: list[uuid.UUID]
    organization_types: list[OrganizationType]
    domains: list[str] = Field(description="Reintegration domains the consent covers.")
    given_at: Timestamp


class CaseConsentGiven(_ConsentScope):
    """A consent or legal basis for disclosure was recorded."""

    TYPE: ClassVar[str] = "case.consent_given.v1"
    TITLE: ClassVar[str] = "Consent given"


class CaseConsentWithdrawn(_ConsentScope):
    """A consent was withdrawn; it stops disclosures at once."""

    TYPE: ClassVar[str] = "case.consent_withdrawn.v1"
    TITLE: ClassVar[str] = "Consent withdrawn"

    withdrawn_at: Timestamp


class CaseGroupChanged(CaseFacts):
    """A post-release contact joined, changed or left the responsibility group. References and
    flags only: never the member's name or contact details."""

    TYPE: ClassVar[str] = "case.group_changed.v1"
    TITLE: ClassVar[str] = "Responsibility group changed"

    member_id: uuid.UUID
    role: str
    organization_id: uuid.UUID | None
    post_release_contact: bool
    active: bool
    change: Literal["added", "changed", "ended"]


class CaseMarketReferralMade(CaseFacts):
    """A service market talk led to a referral, recorded as an action in one of the case's domains."""

    TYPE: ClassVar[str] = "case.market_referral_made.v1"
    TITLE: ClassVar[str] = "Service market referral made"

    appointment_id: uuid.UUID
    provider_organization_id: uuid.UUID
    domain: str = Field(description="The reintegration domain of the referral, e.g. work or housing.")
    domain_action_id: uuid.UUID


# --- agreement-api: the directory, webhooks and agreements --------------------------------------


class _Organization(EventPayload):
    PRODUCER: ClassVar[str] = "agreement-api"

    organization_id: uuid.UUID
    type: OrganizationType
    name: str
    kommunenummer: Kommunenummer | None
    enhetsnummer: Annotated[str, Field(pattern=r"^\d{4}$")] | None
    parent_id: uuid.UUID | None = Field(
        description="Region of a unit, municipality of a district or NAV office."
    )


class OrganizationCreated(_Organization):
    """An organization was registered in the directory."""

    TYPE: ClassVar[str] = "organization.created.v1"
    TITLE: ClassVar[str] = "Organization registered"


class OrganizationChanged(_Organization):
    """An organization's name, number, parent or service area changed."""

    TYPE: ClassVar[str] = "organization.changed.v1"
    TITLE: ClassVar[str] = "Organization changed"

    changed: list[str] = Field(description="Names of the fields that changed.")
    serves_kommunenummer: list[Kommunenummer] | None = Field(
        default=None, description="Present when a NAV office's service area changed."
    )


class EndpointEvent(EventPayload):
    """Carries ids, states and times only; never a secret or private key."""

    PRODUCER: ClassVar[str] = "agreement-api"

    endpoint_id: uuid.UUID
    organization_id: uuid.UUID
    state: EndpointState
    event_types: list[str] = Field(description="Event types delivered to the endpoint; empty means all.")


class EndpointCreated(EndpointEvent):
    """A webhook endpoint was registered for an organization (with its first signing key)."""

    TYPE: ClassVar[str] = "endpoint.created.v1"
    TITLE: ClassVar[str] = "Endpoint created"

    key_id: uuid.UUID = Field(description="The first signing key (never its secret).")
    key_kind: KeyKind


class EndpointChanged(EndpointEvent):
    """A webhook endpoint's URL, description, event types, rate limit or state (enabled) changed."""

    TYPE: ClassVar[str] = "endpoint.changed.v1"
    TITLE: ClassVar[str] = "Endpoint changed"

    changed: list[str] = Field(description="Names of the fields that changed.")


class EndpointDisabled(EndpointEvent):
    """A webhook endpoint was disabled; nothing is delivered to it until it is enabled."""

    TYPE: ClassVar[str] = "endpoint.disabled.v1"
    TITLE: ClassVar[str] = "Endpoint disabled"

    reason: str


class EndpointKeyRotated(EndpointEvent):
    """A webhook endpoint got a new signing key; the previous keys of that kind expire at
    `old_keys_expire_at`."""

    TYPE: ClassVar[str] = "endpoint.key_rotated.v1"
    TITLE: ClassVar[str] = "Endpoint signing key rotated"

    key_id: uuid.UUID = Field(description="The new key (never its secret).")
    kind: KeyKind
    old_key_ids: list[uuid.UUID] = Field(
        description="The previous keys of this kind; they keep signing until `old_keys_expire_at`."
    )
    old_keys_expire_at: Timestamp | None = Field(
        description="Null when there was no previous key of this kind."
    )


class AgreementEvent(EventPayload):
    PRODUCER: ClassVar[str] = "agreement-api"

    agreement_id: uuid.UUID
    version: int = Field(
        description="The agreement version (1 on first activation, +1 per change while active)."
    )
    status: AgreementStatus
    party_organization_ids: list[uuid.UUID]
    domains: list[str] = Field(description="Reintegration domains the agreement covers, e.g. housing, work.")
    valid_from: date
    valid_to: date | None
    reason: str | None = Field(
        default=None, description="Status events only: the reason given for the change."
    )
    changed: list[str] | None = Field(
        default=None,
        description="agreement.changed.v1 only: what changed (field names, `parties` or `rules`).",
    )


class AgreementActivated(AgreementEvent):
    """An agreement became active (signed and put into force, or back from review)."""

    TYPE: ClassVar[str] = "agreement.activated.v1"
    TITLE: ClassVar[str] = "Agreement activated"


class AgreementChanged(AgreementEvent):
    """An active (or under-review) agreement got a new version because its content, parties or
    notice rules changed."""

    TYPE: ClassVar[str] = "agreement.changed.v1"
    TITLE: ClassVar[str] = "Agreement changed"


class AgreementExpired(AgreementEvent):
    """An agreement expired."""

    TYPE: ClassVar[str] = "agreement.expired.v1"
    TITLE: ClassVar[str] = "Agreement expired"


class AgreementTerminated(AgreementEvent):
    """An agreement was terminated."""

    TYPE: ClassVar[str] = "agreement.terminated.v1"
    TITLE: ClassVar[str] = "Agreement terminated"


# --- notify-worker -------------------------------------------------------------------------------


class _Notice(EventPayload):
    """Every notice event carries the notice's ids and its milestone. None but
    notice.receipt_accepted.v1 carries personal data."""

    PRODUCER: ClassVar[str] = "notify-worker"

    notice_id: uuid.UUID
    case_id: uuid.UUID
    recipient_organization_id: uuid.UUID
    kind: NoticeKind
    milestone_days: int | None = Field(description="Days before release; null for a change notice.")


class NoticeHeld(_Notice):
    """A notice may not be sent yet (no consent, or the responsible municipality is unknown,
    disputed or kommuneløs); the coordinator should act."""

    TYPE: ClassVar[str] = "notice.held.v1"
    TITLE: ClassVar[str] = "Notice held"

    reason: Literal["no_consent", "municipality_unknown", "municipality_disputed", "kommunelos"]


class NoticeReleased(_Notice):
    """A held notice may be sent again (consent given, municipality settled); it is scheduled."""

    TYPE: ClassVar[str] = "notice.released.v1"
    TITLE: ClassVar[str] = "Notice released"


class NoticeCancelled(_Notice):
    """A pending notice will never be sent (case closed, release abroad, recipient or release date
    gone)."""

    TYPE: ClassVar[str] = "notice.cancelled.v1"
    TITLE: ClassVar[str] = "Notice cancelled"

    reason: Literal["case_closed", "no_release_date", "no_longer_applies", "release_date_restored"]


class NoticeDelivered(_Notice):
    """At least one webhook endpoint of the recipient answered 2xx; the receipt deadline starts."""

    TYPE: ClassVar[str] = "notice.delivered.v1"
    TITLE: ClassVar[str] = "Notice delivered"

    delivered_at: Timestamp = Field(description="When the first endpoint of the recipient took it.")
    receipt_due_at: Timestamp = Field(
        description="delivered_at plus the rule's receipt deadline in days; no receipt by then escalates."
    )


class NoticeDead(_Notice):
    """Nothing could be delivered (no endpoint, retries ran out, the endpoint is gone or was
    disabled); the coordinator must act. Published again if a redelivered notice dies again."""

    TYPE: ClassVar[str] = "notice.dead.v1"
    TITLE: ClassVar[str] = "Notice dead"

    reason: Literal["no_endpoint", "delivery_failed"] = Field(
        description="`no_endpoint`: the recipient has no active endpoint that takes the notice; "
        "`delivery_failed`: every delivery ended without a 2xx."
    )
    error_classes: list[str] = Field(
        description="The last error class of each delivery (e.g. `server_error`, `gone`, "
        "`endpoint_disabled`), sorted, without repeats; empty for `no_endpoint`."
    )


class _Receipt(_Notice):
    recipient_kind: RecipientKind
    receipt_id: uuid.UUID


class ReceiptPerson(BaseModel):
    """A person of the recipient's staff; at least one of phone and email is set."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=200)


class NoticeReceiptReceived(_Receipt):
    """A notice's recipient says it has the notice; its answer comes later."""

    TYPE: ClassVar[str] = "notice.receipt_received.v1"
    TITLE: ClassVar[str] = "Notice received"


class NoticeReceiptAccepted(_Receipt):
    """A notice's recipient takes the case on, naming a contact person and a substitute from its own
    staff. The only event that carries names (never the inmate's, never an identity number);
    case-api adds the contact to the case's responsibility group."""

    TYPE: ClassVar[str] = "notice.receipt_accepted.v1"
    TITLE: ClassVar[str] = "Notice accepted"

    contact: ReceiptPerson = Field(description="The recipient's contact person for the case.")
    substitute: ReceiptPerson | None = Field(
        default=None, description="Who stands in for the contact person."
    )


class NoticeReceiptRejected(_Receipt):
    """The recipient declines the notice, with a reason; the coordinator should act."""

    TYPE: ClassVar[str] = "notice.receipt_rejected.v1"
    TITLE: ClassVar[str] = "Notice rejected"

    reason: str = Field(
        min_length=1,
        max_length=2000,
        description="The recipient's reason, free text that may not hold an 11-digit number.",
    )


class NoticeEscalated(_Notice):
    """The coordinator must act on a notice: no accepted or rejected receipt by its deadline, or never
    delivered. Once per notice."""

    TYPE: ClassVar[str] = "notice.escalated.v1"
    TITLE: ClassVar[str] = "Notice escalated"

    reason: Literal["no_receipt", "not_delivered"] = Field(
        description="`no_receipt`: delivered, but no accepted or rejected receipt by `receipt_due_at`. "
        "`not_delivered`: delivery gave up (or the recipient has no endpoint); the coordinator must call "
        "the recipient."
    )
    receipt_due_at: Timestamp | None = Field(
        description="When the answer was due; null for a notice never delivered."
    )
    receipt_status: Literal["received"] | None = Field(
        description="`received` when the recipient said it has the notice but gave no answer."
    )
    dead_at: Timestamp | None = Field(description="When delivery gave up (`not_delivered`).")


class NoticeEndpointDisabled(EventPayload):
    """An alert: notify-worker disabled a webhook endpoint in agreement-api because it answered 410
    Gone (`gone`), its URL broke the worker's URL policy at send time (`url_refused`: http, or an
    address that is not public; nothing was sent) or it failed for
    NOTIFY_WORKER_ENDPOINT_FAILURE_DISABLE_SECONDS (`sustained_failure`). Once per episode; the
    subject is `webhook/{endpoint_id}`."""

    TYPE: ClassVar[str] = "notice.endpoint_disabled.v1"
    TITLE: ClassVar[str] = "Endpoint disabled by notify-worker"
    PRODUCER: ClassVar[str] = "notify-worker"

    endpoint_id: uuid.UUID
    organization_id: uuid.UUID
    reason: Literal["gone", "url_refused", "sustained_failure"]
    failing_since: Timestamp | None = Field(
        description="The first failure since the endpoint's last success."
    )


class NotifyRecomputeRequested(EventPayload):
    """notify-worker to itself: recompute one case's notice schedule. Written once per live case (open,
    release date today or later) when an agreement is activated, changed, expired or terminated, so
    each case is recomputed in its own unit of work; and when a notice is delivered that announced
    a date that no longer stands, so its recipient gets its change notice. Only notify-worker binds
    it."""

    TYPE: ClassVar[str] = "notify.recompute_requested.v1"
    TITLE: ClassVar[str] = "Recompute requested"
    PRODUCER: ClassVar[str] = "notify-worker"

    case_id: uuid.UUID
    reason: str = Field(
        description="The type of the event that caused the request, such as agreement.changed.v1 or notice.delivered.v1."
    )
    caused_by: uuid.UUID = Field(description="The id of that event.")


# --- webhook bodies (POSTed to receivers, never on the bus) -------------------------------------


class CoordinatorContact(BaseModel):
    """The case's coordinator (a member of staff, never the inmate)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    phone: str | None = None
    email: str | None = None
    organization_id: uuid.UUID | None = None


class _NoticeWebhook(EventPayload):
    """Ids, the milestone, the date and how sure it is, and the coordinator's work contact; never the
    inmate's name or an identity number."""

    PRODUCER: ClassVar[str] = "notify-worker"
    ON_BUS: ClassVar[bool] = False

    notice_id: uuid.UUID
    case_id: uuid.UUID
    recipient_organization_id: uuid.UUID
    milestone_days: int | None = Field(description="Days before release; null for a change notice.")
    release_date: date
    release_date_certainty: ReleaseDateCertainty | None = Field(
        description="How sure case-api was of this date when the notice was planned; null when unknown or "
        "when case-api already knew another date (a change notice follows)."
    )
    coordinator: CoordinatorContact | None = Field(
        description="The case's coordinator (a member of staff) to call; null when the case has none."
    )
    detail_url: str = Field(
        description="`/api/v1/cases/{case_id}/notice-detail` on case-api: what the recipient may read, "
        "fetched with its own token.",
        json_schema_extra={"format": "uri"},
    )


class NoticeReleaseUpcoming(_NoticeWebhook):
    """A milestone notice: the release is this many days away.

    Sent to each active webhook endpoint of the recipient when the milestone falls due; the
    `webhook-id` header stays the same across retries (docs/notices.md)."""

    TYPE: ClassVar[str] = "notice.release_upcoming.v1"
    TITLE: ClassVar[str] = "Release upcoming (webhook)"


class NoticeReleaseDateChanged(_NoticeWebhook):
    """A change notice: the release date the recipient was told has moved.

    Sent like notice.release_upcoming.v1 when the release date moved after the recipient was told one
    (docs/notices.md)."""

    TYPE: ClassVar[str] = "notice.release_date_changed.v1"
    TITLE: ClassVar[str] = "Release date changed (webhook)"


class WebhookTest(EventPayload):
    """agreement-api's test event, POSTed straight to one webhook endpoint on
    `POST /api/v1/webhooks/{id}/test`."""

    TYPE: ClassVar[str] = "webhook.test.v1"
    TITLE: ClassVar[str] = "Webhook test"
    PRODUCER: ClassVar[str] = "agreement-api"
    ON_BUS: ClassVar[bool] = False

    endpoint_id: uuid.UUID
    organization_id: uuid.UUID
    message: str


# --- the registry --------------------------------------------------------------------------------


def _concrete(base: type[EventPayload]) -> list[type[EventPayload]]:
    found: list[type[EventPayload]] = []
    for sub in base.__subclasses__():
        if sub.TYPE:
            found.append(sub)
        found.extend(_concrete(sub))
    return found


EVENTS: dict[str, type[EventPayload]] = {model.TYPE: model for model in _concrete(EventPayload)}
"""Every event type (bus events and webhook bodies) and its payload model."""

P = TypeVar("P", bound=EventPayload)


def parse_event(event: EventEnvelope, model: type[P]) -> P:
    """``event.data`` as ``model``; :class:`MalformedEvent` when it does not fit."""
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        raise MalformedEvent(event, exc) from None
