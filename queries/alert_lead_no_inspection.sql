-- Alert rule `lead_no_inspection` (alerts.yaml): children whose blood-lead test was at or
-- above the CDC blood lead reference value (3.5 ug/dL) and whose home address had NO housing
-- inspection within 30 days after the test.
--
-- Parameter (bound by the engine, never pasted): $as_of (DATE), the day the rule is judged on.
-- Only tests at least 30 days before $as_of count, so the 30-day window has closed and the
-- case is a real miss, not one still in progress. Tests more than 120 days before $as_of are
-- left to the lead_followup_30d KPI: the alert is for cases someone can still act on, and the
-- first run on a new installation does not flood the inbox with three years of history.
-- One row per elevated test; the alert's dedupe key is (child_id, test_id).
WITH elevated AS (
    SELECT
        t.test_id,
        t.child_id,
        t.address_id,
        t.district,
        t.tested_at,
        t.result_ug_dl,
        CAST(t.tested_at AS DATE) AS test_date
    FROM blood_lead_tests AS t
    WHERE t.result_ug_dl >= 3.5
      AND CAST(t.tested_at AS DATE) <= CAST($as_of AS DATE) - 30
      AND CAST(t.tested_at AS DATE) > CAST($as_of AS DATE) - 120
)
SELECT
    e.child_id,
    e.test_id,
    e.address_id,
    e.district,
    e.tested_at,
    e.result_ug_dl,
    CAST($as_of AS DATE) - e.test_date AS days_since_test
FROM elevated AS e
WHERE NOT EXISTS (
    SELECT 1
    FROM housing_inspections AS i
    WHERE i.address_id = e.address_id
      AND i.inspected_at IS NOT NULL
      AND CAST(i.inspected_at AS DATE) BETWEEN e.test_date AND e.test_date + 30
)
ORDER BY e.tested_at, e.child_id, e.test_id
