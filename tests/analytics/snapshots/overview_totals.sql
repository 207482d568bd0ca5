SELECT started_at >= fromUnixTimestamp64Milli({p14:Int64}, 'UTC') AS in_range,
       toString(toDate(started_at, {p15:String})) AS bucket,
       grouping(bucket) AS is_total,
       groupBitmap(visitor_num) AS visitors,
       count() AS sessions,
       sum(pageviews) AS pageview_sum,
       countIf(pageviews = 1) AS bounces,
       sum(duration_ms) AS duration_sum
FROM hitmetrix.sessions FINAL
WHERE project_id = {project_id:UInt32}
  AND (is_deleted = 0)
  AND (pageviews > 0)
  AND (started_at >= fromUnixTimestamp64Milli({p1:Int64}, 'UTC'))
  AND (started_at < fromUnixTimestamp64Milli({p2:Int64}, 'UTC'))
  AND (country = {p3:String})
  AND (device_type = {p4:String})
  AND (browser = {p5:String})
  AND (os = {p6:String})
  AND (referrer_domain = {p7:String})
  AND (utm_source = {p8:String})
  AND (utm_medium = {p9:String})
  AND (utm_campaign = {p10:String})
  AND (arrayExists(p -> positionCaseInsensitive(p, {p11:String}) > 0, pageview_paths))
  AND (user_id != '')
  AND (arrayExists(p -> p.2 = {p12:String} AND p.3 = {p13:String}, event_props))
GROUP BY GROUPING SETS ((in_range), (in_range, bucket))
-- params: [('p1', 1786572000000), ('p10', 'autumn'), ('p11', '/cart'), ('p12', 'plan'), ('p13', 'pro'), ('p14', 1789164000000), ('p15', 'Europe/Berlin'), ('p2', 1791756000000), ('p3', 'DE'), ('p4', 'mobile'), ('p5', 'Chrome'), ('p6', 'iOS'), ('p7', 'google.com'), ('p8', 'news'), ('p9', 'email'), ('project_id', 7)]
