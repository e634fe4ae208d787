"""FHIR mapping: care (filled in below)."""
