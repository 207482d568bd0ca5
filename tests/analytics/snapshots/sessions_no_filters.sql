SELECT toUnixTimestamp64Milli(started_at) AS started_ms,
       session_id
FROM hitmetrix.sessions
WHERE project_id = {project_id:UInt32}
  AND (is_deleted = 0)
ORDER BY started_at DESC, session_id DESC
LIMIT 50
-- params: [('project_id', 7)]
