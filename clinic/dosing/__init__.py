"""The OTP dosing record: observed doses, take-home dispenses, take-home eligibility, the dispensing log."""
