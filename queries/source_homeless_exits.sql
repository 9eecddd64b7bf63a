-- Enrolments that have ended, placed in time by their exit date, with the length of stay.
SELECT
    enrollment_id,
    client_id,
    provider,
    program_type,
    entered_at,
    exited_at,
    exit_destination,
    returned_within_12m,
    date_diff('day', entered_at, exited_at) AS stay_days
FROM homeless_enrollments
WHERE exited_at IS NOT NULL
