"""One small function per FHIR resource, from clinic's models (docs/fhir.md has the mapping table).

Importing this package registers every source in ``clinic.fhir.sources.SOURCES``, in the order a
client's Bundle lists them: the record (Patient, EpisodeOfCare, Consent), care (CarePlan, Goal,
MedicationRequest, Appointment), then instruments and drug screens (QuestionnaireResponse,
Observation).
"""

from clinic.fhir.mapping import care, instruments, record, screens

__all__ = ["care", "instruments", "record", "screens"]
