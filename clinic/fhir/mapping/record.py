"""FHIR mapping: record (filled in below)."""
