"""What two or more domains share: model base, errors, pagination, time helpers."""
