"""The clinician's home page: today's appointments, alerts, plan reviews due and follow-ups, in one place.

It reads what other domains own (scheduling, notify, plans, intake) and owns no data of its own.
"""
