"""Overdose prevention: naloxone dispenses and overdose events."""
