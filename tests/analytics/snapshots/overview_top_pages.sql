SELECT value,
       groupBitmap(visitor_num) AS visitors,
       sum(views) AS pageview_sum
FROM (
SELECT visitor_num,
       page_names,
       page_counts
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
)
ARRAY JOIN page_names AS value, page_counts AS views
GROUP BY value
ORDER BY visitors DESC, pageview_sum DESC, value
LIMIT 10
-- params: [('p1', 1789164000000), ('p10', 'autumn'), ('p11', '/cart'), ('p12', 'plan'), ('p13', 'pro'), ('p2', 1791756000000), ('p3', 'DE'), ('p4', 'mobile'), ('p5', 'Chrome'), ('p6', 'iOS'), ('p7', 'google.com'), ('p8', 'news'), ('p9', 'email'), ('project_id', 7)]
