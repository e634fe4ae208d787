"""FHIR mapping: screens (filled in below)."""
