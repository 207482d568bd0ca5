SELECT multiIf(grouping(entry_path) = 0, 'entry_pages', grouping(exit_path) = 0, 'exit_pages', grouping(referrer_domain) = 0, 'referrers', grouping(utm_source) = 0, 'utm_sources', grouping(utm_medium) = 0, 'utm_mediums', grouping(utm_campaign) = 0, 'utm_campaigns', grouping(country) = 0, 'countries', grouping(browser) = 0, 'browsers', grouping(os) = 0, 'oses', grouping(device_type) = 0, 'devices', '') AS kind,
       multiIf(grouping(entry_path) = 0, toString(entry_path), grouping(exit_path) = 0, toString(exit_path), grouping(referrer_domain) = 0, toString(referrer_domain), grouping(utm_source) = 0, toString(utm_source), grouping(utm_medium) = 0, toString(utm_medium), grouping(utm_campaign) = 0, toString(utm_campaign), grouping(country) = 0, toString(country), grouping(browser) = 0, toString(browser), grouping(os) = 0, toString(os), grouping(device_type) = 0, toString(device_type), '') AS value,
       groupBitmap(visitor_num) AS visitors,
       count() AS session_count
FROM (
SELECT visitor_num,
       entry_path,
       exit_path,
       referrer_domain,
       utm_source,
       utm_medium,
       utm_campaign,
       country,
       browser,
       os,
       device_type
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
GROUP BY GROUPING SETS ((entry_path), (exit_path), (referrer_domain), (utm_source), (utm_medium), (utm_campaign), (country), (browser), (os), (device_type))
HAVING (kind = 'referrers' OR value != '')
ORDER BY kind, visitors DESC, session_count DESC, value
LIMIT 10 BY kind
-- params: [('p1', 1789164000000), ('p10', 'autumn'), ('p11', '/cart'), ('p12', 'plan'), ('p13', 'pro'), ('p2', 1791756000000), ('p3', 'DE'), ('p4', 'mobile'), ('p5', 'Chrome'), ('p6', 'iOS'), ('p7', 'google.com'), ('p8', 'news'), ('p9', 'email'), ('project_id', 7)]
