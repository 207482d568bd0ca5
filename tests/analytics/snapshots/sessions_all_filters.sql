SELECT session_id,
       toUnixTimestamp64Milli(min(first_ts)) AS started_at,
       toUnixTimestamp64Milli(max(last_ts)) - started_at AS duration_ms,
       sum(pageviews) AS pageviews,
       sum(clicks) AS clicks,
       sum(errors) AS errors,
       sum(events) AS events,
       min(entry).2 AS entry_url,
       anyIf(country, country != '') AS country,
       any(browser) AS browser,
       any(os) AS os,
       any(device_type) AS device_type,
       max(last_user).2 AS user_id
FROM hitmetrix.session_segments FINAL
WHERE project_id = {project_id:UInt32}
  AND last_ts >= fromUnixTimestamp64Milli({p1:Int64}, 'UTC')
  AND first_ts < fromUnixTimestamp64Milli({p3:Int64}, 'UTC')
GROUP BY session_id
HAVING started_at >= {p2:Int64}
   AND started_at < {p4:Int64}
   AND arrayExists(u -> positionCaseInsensitive(u, {p5:String}) > 0, groupUniqArrayArray(urls))
   AND anyIf(country, country != '') = {p6:String}
   AND anyIf(device_type, device_type != '') = {p7:String}
   AND anyIf(browser, browser != '') = {p8:String}
   AND anyIf(os, os != '') = {p9:String}
   AND duration_ms >= {p10:Int64}
   AND duration_ms <= {p11:Int64}
   AND sum(errors) > 0
   AND max(last_user).2 = {p12:String}
   AND (started_at, session_id) < ({p13:Int64}, {p14:String})
ORDER BY started_at DESC, session_id DESC
LIMIT 51
-- params: [('p1', 1793491200000), ('p10', 2500), ('p11', 60000), ('p12', 'u1'), ('p13', 1764255600000), ('p14', 'sess-alpha-01'), ('p2', 1793491200000), ('p3', 1795824000000), ('p4', 1795824000000), ('p5', '/cart'), ('p6', 'DE'), ('p7', 'mobile'), ('p8', 'Chrome'), ('p9', 'Linux'), ('project_id', 7)]
