SELECT session_id,
       toUnixTimestamp64Milli(started_at) AS started_at,
       duration_ms,
       pageviews,
       clicks,
       errors,
       events,
       entry_url,
       country,
       browser,
       os,
       device_type,
       user_id,
       rage_clicks,
       dead_clicks,
       error_clicks,
       quick_backs,
       excessive_scrolls,
       thrashed_cursors
FROM hitmetrix.sessions FINAL
WHERE project_id = {project_id:UInt32}
  AND (started_at BETWEEN fromUnixTimestamp64Milli({p1:Int64}, 'UTC') AND fromUnixTimestamp64Milli({p2:Int64}, 'UTC'))
  AND ((toUnixTimestamp64Milli(started_at), session_id) IN (SELECT arrayJoin(JSONExtract({p3:String}, 'Array(Tuple(Int64, String))'))))
  AND (started_at >= fromUnixTimestamp64Milli({p4:Int64}, 'UTC'))
  AND (started_at < fromUnixTimestamp64Milli({p5:Int64}, 'UTC'))
  AND (arrayExists(u -> positionCaseInsensitive(u, {p6:String}) > 0, urls))
  AND (country = {p7:String})
  AND (device_type = {p8:String})
  AND (browser = {p9:String})
  AND (os = {p10:String})
  AND (user_id = {p11:String})
  AND (duration_ms >= {p12:Int64})
  AND (duration_ms <= {p13:Int64})
  AND (errors > 0)
  AND (arrayExists(p -> p.1 = {p14:String} AND p.2 IN ('rage', 'dead'), frustration_pages))
  AND (referrer_domain = {ov15_p3:String})
  AND (utm_campaign = {ov15_p4:String})
  AND (user_id != '')
  AND (arrayExists(p -> p.2 = {ov15_p5:String} AND p.3 = {ov15_p6:String}, event_props))
ORDER BY started_at DESC, session_id DESC
-- params: [('ov15_p3', 'google.com'), ('ov15_p4', "o'brien{p1:String}"), ('ov15_p5', 'plan'), ('ov15_p6', 'pro'), ('p1', 1764252000000), ('p10', 'Linux'), ('p11', 'u1'), ('p12', 2500), ('p13', 60000), ('p14', '/cart'), ('p2', 1764255600000), ('p3', '[[1764255600000, "sess-alpha-01"], [1764252000000, "sess-bravo-02"]]'), ('p4', 1793487600000), ('p5', 1795820400000), ('p6', '/cart'), ('p7', 'DE'), ('p8', 'mobile'), ('p9', 'Chrome'), ('project_id', 7)]
