from shared.errors import Conflict, NotFound, UnprocessableEntity


class AgreementNotFound(NotFound):
    title = "Agreement not found"


class AgreementVersionNotFound(NotFound):
    title = "Agreement version not found"


class NoticeRuleNotFound(NotFound):
    title = "Notice rule not found"


class IllegalTransition(Conflict):
    """The extension ``allowed_next`` lists the statuses the agreement may move to."""

    title = "Illegal status transition"


class AgreementNotEditable(Conflict):
    title = "Agreement cannot be changed in its status"


class OverlappingAgreement(Conflict):
    """The extension ``other_agreement_id`` names the agreement already covering the parties."""

    title = "Overlapping agreement for the same parties"


class InvalidParties(UnprocessableEntity):
    title = "Invalid agreement parties"


class InvalidValidity(UnprocessableEntity):
    title = "Invalid validity period"


class InvalidRecipient(UnprocessableEntity):
    title = "Invalid notice rule recipient"


class InvalidAgreement(UnprocessableEntity):
    title = "Invalid agreement"
