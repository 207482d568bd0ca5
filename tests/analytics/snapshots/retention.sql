SELECT toString(cohort) AS cohort_day, offset, count() AS visitors FROM (SELECT cohort, arrayJoin(arrayConcat([0], arrayFilter(o -> o >= 1 AND o <= 3, arrayMap(p -> dateDiff('month', cohort, p), returns)))) AS offset FROM (SELECT visitor, argMinIf(period, started_at, is_start) AS cohort, minIf(started_at, is_start) AS first_at, groupUniqArrayIf(period, is_return) AS returns FROM (SELECT user_id AS visitor,
       started_at,
       toStartOfMonth(started_at, {p5:String}) AS period,
       arrayExists(p -> like(p, {p6:String}), pageview_paths) AS is_start,
       arrayExists(e -> e.1 = {p7:String}, event_props) AS is_return
FROM hitmetrix.sessions FINAL
WHERE project_id = {project_id:UInt32}
  AND (is_deleted = 0)
  AND (pageviews > 0)
  AND (started_at >= fromUnixTimestamp64Milli({p1:Int64}, 'UTC'))
  AND (started_at < fromUnixTimestamp64Milli({p2:Int64}, 'UTC'))
  AND (country = {p3:String})
  AND (arrayExists(p -> positionCaseInsensitive(p, {p4:String}) > 0, pageview_paths))
  AND (user_id != '')) GROUP BY visitor HAVING countIf(is_start) > 0 AND first_at >= fromUnixTimestamp64Milli({p8:Int64}, 'UTC') AND first_at < fromUnixTimestamp64Milli({p9:Int64}, 'UTC'))) GROUP BY cohort_day, offset
-- params: [('p1', -3600000), ('p2', 1801436400000), ('p3', 'DE'), ('p4', '/cart'), ('p5', 'Europe/Berlin'), ('p6', '/blog/%'), ('p7', 'purchase'), ('p8', 1788213600000), ('p9', 1793487600000), ('project_id', 7)]
