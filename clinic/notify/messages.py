"""What clients are told, in their language: reminder texts, emails, replies and the link page.

Templates live in ``templates/reminders/<language>/``; each is given only what the privacy rules
(DOMAIN.md) allow a message to say: the site's neutral display name, the date and time in the
client's zone, the confirm/cancel link, and how to opt out. Nothing else reaches a template —
no appointment kind, clinician, location or program — so no template can leak it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_skeleton, format_time
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

#: Languages every template exists in; the first is the fallback.
SHIPPED_LANGUAGES = ("en", "es")
#: The templates of a language, each rendered by the privacy test for every shipped language.
TEMPLATES = (
    "sms.txt",
    "email_subject.txt",
    "email_body.txt",
    "ics_summary.txt",
    "reply_confirmed.txt",
    "reply_nothing_to_confirm.txt",
    "reply_help.txt",
    "reply_resubscribed.txt",
    "link.html",
)
#: Narrow and ordinary no-break spaces (CLDR puts them in "9:30 AM") would force an SMS out of
#: the GSM alphabet into UCS-2, which halves the characters per message.
_SPACES = str.maketrans({"\u202f": " ", "\u00a0": " "})


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("clinic.notify", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def message_language(tag: str | None) -> str:
    """The shipped language for a BCP 47 tag: "es-MX" → "es"; anything unknown → "en"."""
    primary = (tag or "").split("-")[0].split("_")[0].lower()
    return primary if primary in SHIPPED_LANGUAGES else SHIPPED_LANGUAGES[0]


@dataclass(frozen=True)
class MessageContext:
    """Everything a message may say (DOMAIN.md, privacy rules) and nothing more."""

    #: The site's neutral display name.
    site: str
    #: The appointment's start on the client's wall clock.
    starts_at: datetime
    zone: str
    language: str
    #: The signed confirm/cancel link ("" where a message carries none).
    link: str = ""
    #: The channel the message goes out on: "sms" or "email" (the opt-out wording depends on it).
    channel: str = "sms"

    def variables(self) -> dict[str, str]:
        local = self.starts_at.astimezone(ZoneInfo(self.zone))
        lang = self.language
        return {
            "site": self.site,
            "date_short": format_skeleton("MMMEd", local, locale=lang).translate(_SPACES),
            "date_long": format_date(local, format="full", locale=lang).translate(_SPACES),
            "time": format_time(local, format="short", locale=lang).translate(_SPACES),
            "zone": local.tzname() or self.zone,
            "link": self.link,
            "channel": self.channel,
            "language": lang,
        }


def render(template: str, context: MessageContext, **extra: object) -> str:
    """Render ``template`` of the context's language (text templates come back stripped)."""
    name = f"reminders/{message_language(context.language)}/{template}"
    text = _environment().get_template(name).render(**context.variables(), **extra)
    return text if template.endswith(".html") else text.strip()


def render_invalid_link_page(language: str) -> str:
    """The page for a link that is forged, expired or no longer applies (no appointment known)."""
    name = f"reminders/{message_language(language)}/link.html"
    return _environment().get_template(name).render(
        site="", outcome="invalid", language=message_language(language), channel="sms"
    )
