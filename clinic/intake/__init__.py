"""Intake calls: the first contact, the follow-up queue and conversion to a client."""
