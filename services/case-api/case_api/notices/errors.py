from shared.errors import NotFound, ServiceUnavailable, UnprocessableEntity

# How long a recipient should wait before asking again when agreement-api could not be asked.
RETRY_AFTER_SECONDS = 30


class NoNoticeDetail(NotFound):
    """Not a recipient, or nothing its consent covers: answered like an unknown case, so neither
    the case nor the reason leaks."""

    title = "Case not found"


class RulesUnavailable(ServiceUnavailable):
    title = "Notice rules unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(
            detail,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            retryable=True,
            retry_after_seconds=RETRY_AFTER_SECONDS,
        )


class ViewOrganizationRequired(UnprocessableEntity):
    title = "Whose view?"
