"""Phone numbers: parsed with libphonenumber and stored in E.164."""

from __future__ import annotations

import phonenumbers
from flask import current_app, has_app_context
from marshmallow import ValidationError, fields


def default_region() -> str:
    if has_app_context():
        return str(current_app.config.get("DEFAULT_PHONE_REGION", "US"))
    return "US"


def to_e164(raw: str) -> str:
    """Parse ``raw`` (national numbers in the default region) into E.164, or raise ValueError."""
    try:
        number = phonenumbers.parse(raw, default_region())
    except phonenumbers.NumberParseException as exc:
        raise ValueError("Not a phone number.") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("Not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def try_e164(raw: str) -> str | None:
    """E.164 form of ``raw`` when it is a valid phone number, else None."""
    try:
        return to_e164(raw)
    except ValueError:
        return None


class PhoneField(fields.String):
    """A phone number in any common notation, loaded as E.164."""

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: object) -> str:
        raw = super()._deserialize(value, attr, data, **kwargs)
        if len(raw) > 40:
            raise ValidationError("Not a phone number.")
        try:
            return to_e164(raw)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
