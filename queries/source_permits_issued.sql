-- Issued permits, placed in time by their issue date, with the review time in days.
SELECT
    permit_id,
    permit_type,
    issued_at,
    applied_at,
    review_target_days,
    district,
    date_diff('hour', applied_at, issued_at) / 24.0 AS review_days
FROM permits
WHERE issued_at IS NOT NULL
