"""Schemas of the FHIR export's requests (the resources themselves are checked by clinic.fhir.validate)."""

from __future__ import annotations

from clinic.core.schemas import StrictSchema, id_field


class ClientExportArgsSchema(StrictSchema):
    consent_id = id_field(
        strict=False,
        metadata={
            "description": "An active 42 CFR 2.31 disclosure consent of this client: the export is made to its "
            "recipient, for its purpose, and entered in the accounting of disclosures."
        },
    )
