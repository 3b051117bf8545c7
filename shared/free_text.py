"""Free text people type (notes, reasons, decisions, names): refused with a 422 naming the field
when it holds a national identity number, by the rule the logs mask
(:func:`shared.identifiers.mask_identity_numbers`). Refused rather than masked: the writer learns
at once and can refer to the person by the case instead; a mask would change the text unseen.

Annotate the whole field, ``None`` included, so that ``Field(max_length=...)`` keeps its own check:
``note: OptionalFreeText = Field(None, max_length=1000)``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator

from shared.identifiers import contains_identity_number

IDENTITY_NUMBER_REFUSED = (
    "must not contain a national identity number (or any standalone 11-digit number); "
    "refer to the person by the case instead"
)


def refuse_identity_number(value: Any) -> Any:
    # The message never repeats the value: the 422 body must not carry the number either.
    if isinstance(value, str) and contains_identity_number(value):
        raise ValueError(IDENTITY_NUMBER_REFUSED)
    return value


NoIdentityNumber = AfterValidator(refuse_identity_number)
FreeText = Annotated[str, NoIdentityNumber]
OptionalFreeText = Annotated[str | None, NoIdentityNumber]
