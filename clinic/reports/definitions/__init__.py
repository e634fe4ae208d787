"""Every report of clinic; importing this package registers them."""

from clinic.reports.definitions import appointments, care, intake, medications, overdose, plans, screens  # noqa: F401
