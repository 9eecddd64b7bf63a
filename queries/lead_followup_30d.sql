-- Share of children with a blood-lead test >= 3.5 ug/dL (CDC reference value since Oct 2021)
-- whose home address had a housing inspection within 30 days after the test.
--
-- A child counts once per period: their first elevated test in the period. The period is
-- that of the test. Parameters (bound by the engine): $grain ('day', 'week', 'month',
-- 'quarter', 'fiscal_year'), $start and $end (dates) and $fy_start_month (1-12).
-- Cases whose 30-day window is still open at the end of the data are left out, so a recent
-- period is not marked down for inspections that may still happen.
WITH data_end AS (
    SELECT max(tested_at) AS last_test FROM blood_lead_tests
),
elevated AS (
    SELECT
        t.child_id,
        t.address_id,
        t.tested_at,
        CASE $grain
            WHEN 'day' THEN CAST(t.tested_at AS DATE)
            WHEN 'week' THEN CAST(date_trunc('week', t.tested_at) AS DATE)
            WHEN 'month' THEN CAST(date_trunc('month', t.tested_at) AS DATE)
            WHEN 'quarter' THEN CAST(date_trunc('quarter', t.tested_at) AS DATE)
            ELSE CAST(date_trunc('year', t.tested_at - to_months($fy_start_month - 1))
                      + to_months($fy_start_month - 1) AS DATE)
        END AS period_start
    FROM blood_lead_tests AS t, data_end
    WHERE t.result_ug_dl >= 3.5
      AND t.tested_at >= $start
      AND t.tested_at < $end
      AND t.tested_at <= data_end.last_test - INTERVAL 30 DAY
),
first_case AS (
    SELECT child_id, period_start, arg_min(address_id, tested_at) AS address_id, min(tested_at) AS tested_at
    FROM elevated
    GROUP BY child_id, period_start
),
followed AS (
    SELECT
        c.period_start,
        c.child_id,
        bool_or(i.inspected_at IS NOT NULL) AS inspected
    FROM first_case AS c
    LEFT JOIN housing_inspections AS i
        ON i.address_id = c.address_id
       AND i.inspected_at >= c.tested_at
       AND i.inspected_at <= c.tested_at + INTERVAL 30 DAY
    GROUP BY c.period_start, c.child_id
)
SELECT
    period_start,
    count(*) FILTER (WHERE inspected)::DOUBLE AS numerator,
    count(*)::DOUBLE AS denominator,
    count(*) FILTER (WHERE inspected)::DOUBLE / count(*) AS value
FROM followed
GROUP BY period_start
ORDER BY period_start
