"""Request and response schemas of accounts, sessions, tokens and sites."""

from __future__ import annotations

from marshmallow import fields, validate

from clinic.auth.models import Role
from clinic.auth.passwords import MAX_LENGTH
from clinic.core.pagination import PageArgsSchema, page_schema
from clinic.core.schemas import StrictSchema, text, timezone_field


def password_field(*, required: bool = True) -> fields.String:
    """A password in a request; never echoed. Its policy is checked by the operation."""
    return fields.String(required=required, load_only=True, validate=validate.Length(min=1, max=MAX_LENGTH * 4))


class UserSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    role = fields.Enum(Role, by_value=True, dump_only=True)
    site_ids = fields.List(fields.Integer(), dump_only=True)
    is_supervisor = fields.Boolean(dump_only=True)
    is_active = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    last_login_at = fields.DateTime(dump_only=True, allow_none=True)


UserPageSchema = page_schema(UserSchema, "UserPage")


class LoginSchema(StrictSchema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = password_field()


class SessionInfoSchema(StrictSchema):
    user = fields.Nested(UserSchema, required=True)
    csrf_token = fields.String(
        allow_none=True,
        required=True,
        metadata={
            "description": "Send as X-CSRF-Token on unsafe cookie-authenticated requests; null with a bearer token."
        },
    )


class PasswordChangeSchema(StrictSchema):
    current_password = password_field()
    new_password = password_field()


class TokenCreateSchema(StrictSchema):
    name = text(max_length=100)
    expires_in_days = fields.Integer(validate=validate.Range(min=1, max=365), allow_none=True)


class TokenCreatedSchema(StrictSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    token = fields.String(required=True, metadata={"description": "Shown once; store it safely."})
    expires_at = fields.DateTime(required=True)


class TokenSchema(StrictSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)
    last_used_at = fields.DateTime(allow_none=True)


class TokenListSchema(StrictSchema):
    items = fields.List(fields.Nested(TokenSchema), required=True)


class SiteSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    name = text()
    timezone = timezone_field()
    display_name = text(required=False, metadata={"description": "Neutral name used in messages to clients."})
    is_otp = fields.Boolean(load_default=False)
    requires_supervisor_signature = fields.Boolean(load_default=False)
    created_at = fields.DateTime(dump_only=True)


SitePageSchema = page_schema(SiteSchema, "SitePage")


class SitePatchSchema(StrictSchema):
    name = text(required=False)
    timezone = timezone_field(required=False)
    display_name = text(required=False)
    is_otp = fields.Boolean()
    requires_supervisor_signature = fields.Boolean()


class UserCreateSchema(StrictSchema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    name = text()
    role = fields.Enum(Role, by_value=True, required=True)
    site_ids = fields.List(
        fields.Integer(strict=True, validate=validate.Range(min=1, max=2**31 - 1)),
        load_default=list,
        validate=validate.Length(max=100),
    )
    password = password_field()
    is_supervisor = fields.Boolean(load_default=False)


class UserPatchSchema(StrictSchema):
    email = fields.Email(validate=validate.Length(max=254))
    name = text(required=False)
    role = fields.Enum(Role, by_value=True)
    site_ids = fields.List(
        fields.Integer(strict=True, validate=validate.Range(min=1, max=2**31 - 1)), validate=validate.Length(max=100)
    )
    password = password_field(required=False)
    is_supervisor = fields.Boolean()
    is_active = fields.Boolean()


class ListArgsSchema(PageArgsSchema):
    pass
