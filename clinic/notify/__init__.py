"""Notifications: staff alerts, client reminders, and the channels that deliver them."""
