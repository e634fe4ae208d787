"""FHIR mapping: instruments (filled in below)."""
