SELECT if(ts >= fromUnixTimestamp64Milli({p29:Int64}, 'UTC'), 0, 1) AS period, series, toString(toDate(ts, {p31:String})) AS bucket, if(multiIf(series = 1, value IN ({p30:String}), 0), value, '') AS shown, toUInt8(1 - multiIf(series = 1, value IN ({p30:String}), 0)) AS is_other,
       count() AS events, uniqExact(anonymous_id) AS visitors, uniqExact(session_id) AS sessions
FROM (SELECT e.series AS series, e.ts AS ts, e.session_id AS session_id, s.anonymous_id AS anonymous_id, s.started_at AS started_at, e.event_value AS value
FROM (SELECT session_id,
       ts,
       arrayJoin(arrayFilter(i -> i > 0, [if((type = 'click') AND (selector = {p15:String}) AND (text = {p16:String}), 1, 0), if((type = 'pageview') AND (startsWith(path, {p17:String})), 2, 0)])) AS series,
       if(type = 'custom' AND JSONHas(props, {p18:String}), if(JSONType(props, {p18:String}) = 'String', JSONExtractString(props, {p18:String}), JSONExtractRaw(props, {p18:String})), '') AS event_value
FROM hitmetrix.events
WHERE project_id = {project_id:UInt32}
  AND (type IN ('click', 'pageview'))
  AND (((type = 'click') AND (selector = {p15:String}) AND (text = {p16:String})) OR ((type = 'pageview') AND (startsWith(path, {p17:String}))))
  AND ((ts >= fromUnixTimestamp64Milli({p19:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({p20:Int64}, 'UTC')) OR (ts >= fromUnixTimestamp64Milli({p21:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({p22:Int64}, 'UTC')))) AS e
INNER JOIN (SELECT session_id,
       anonymous_id,
       started_at,
       '' AS session_value
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
  AND (ended_at >= fromUnixTimestamp64Milli({p14:Int64}, 'UTC'))) AS s ON e.session_id = s.session_id
WHERE (e.ts >= fromUnixTimestamp64Milli({p23:Int64}, 'UTC') AND e.ts < fromUnixTimestamp64Milli({p24:Int64}, 'UTC') AND s.started_at >= fromUnixTimestamp64Milli({p25:Int64}, 'UTC')) OR (e.ts >= fromUnixTimestamp64Milli({p26:Int64}, 'UTC') AND e.ts < fromUnixTimestamp64Milli({p27:Int64}, 'UTC') AND s.started_at >= fromUnixTimestamp64Milli({p28:Int64}, 'UTC')))
GROUP BY GROUPING SETS ((period, series, bucket, shown, is_other), (period, series, shown, is_other))
-- params: {"p1": 1786485600000, "p10": "autumn", "p11": "/cart", "p12": "plan", "p13": "pro", "p14": 1786572000000, "p15": "#buy", "p16": "Buy now", "p17": "/blog/", "p18": "plan", "p19": 1789164000000, "p2": 1791756000000, "p20": 1791756000000, "p21": 1786572000000, "p22": 1789164000000, "p23": 1789164000000, "p24": 1791756000000, "p25": 1789077600000, "p26": 1786572000000, "p27": 1789164000000, "p28": 1786485600000, "p29": 1789164000000, "p3": "DE", "p30": "pro", "p31": "Europe/Berlin", "p4": "mobile", "p5": "Chrome", "p6": "iOS", "p7": "google.com", "p8": "news", "p9": "email", "project_id": 7}
