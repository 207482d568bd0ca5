SELECT toUnixTimestamp64Milli(started_at) AS started_ms,
       session_id
FROM hitmetrix.sessions
WHERE project_id = {project_id:UInt32}
  AND (is_deleted = 0)
  AND (started_at >= fromUnixTimestamp64Milli({p1:Int64}, 'UTC'))
  AND (started_at < fromUnixTimestamp64Milli({p2:Int64}, 'UTC'))
  AND (arrayExists(u -> positionCaseInsensitive(u, {p3:String}) > 0, urls))
  AND (country = {p4:String})
  AND (device_type = {p5:String})
  AND (browser = {p6:String})
  AND (os = {p7:String})
  AND (user_id = {p8:String})
  AND (duration_ms >= {p9:Int64})
  AND (duration_ms <= {p10:Int64})
  AND (errors > 0)
  AND (arrayExists(p -> p.1 = {p11:String} AND p.2 IN ('rage', 'dead'), frustration_pages))
  AND (referrer_domain = {ov12_p3:String})
  AND (utm_campaign = {ov12_p4:String})
  AND (user_id != '')
  AND (arrayExists(p -> p.2 = {ov12_p5:String} AND p.3 = {ov12_p6:String}, event_props))
  AND (started_at <= fromUnixTimestamp64Milli({p12:Int64}, 'UTC'))
  AND ((started_at, session_id) < (fromUnixTimestamp64Milli({p12:Int64}, 'UTC'), {p13:String}))
ORDER BY started_at DESC, session_id DESC
LIMIT 50
-- params: [('ov12_p3', 'google.com'), ('ov12_p4', "o'brien{p1:String}"), ('ov12_p5', 'plan'), ('ov12_p6', 'pro'), ('p1', 1793487600000), ('p10', 60000), ('p11', '/cart'), ('p12', 1764255600000), ('p13', 'sess-alpha-01'), ('p2', 1795820400000), ('p3', '/cart'), ('p4', 'DE'), ('p5', 'mobile'), ('p6', 'Chrome'), ('p7', 'Linux'), ('p8', 'u1'), ('p9', 2500), ('project_id', 7)]
