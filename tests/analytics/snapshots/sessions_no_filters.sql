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
GROUP BY session_id
ORDER BY started_at DESC, session_id DESC
LIMIT 51
-- params: [('project_id', 7)]
