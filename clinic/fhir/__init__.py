"""FHIR R4 export of client records, every resource labelled for 42 CFR Part 2 (docs/fhir.md)."""
