"""Every report of clinic; importing this package registers them."""

from clinic.reports.definitions import care, intake, medications, plans, screens  # noqa: F401
