SELECT session_id,
       arrayMap(x -> multiIf(match(x, {p4:String}), {p5:String}, match(x, {p6:String}), {p7:String}, x), arrayMap(p -> if(match(p, '[0-9-]'), arrayStringConcat(arrayMap(seg -> if(match(seg, '^[0-9]+$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$') OR (match(seg, '^[0-9a-fA-F]{8,}$') AND match(seg, '[0-9]')), ':id', seg), splitByChar('/', p)), '/'), p), pageview_paths)) AS cleaned,
       indexOf(cleaned, {p8:String}) AS anchor_index,
       arrayFilter((x, before, i) -> i = 1 OR x != before, arraySlice(cleaned, 1, anchor_index), arrayPushFront(arrayPopBack(arraySlice(cleaned, 1, anchor_index)), ''), arrayEnumerate(arraySlice(cleaned, 1, anchor_index))) AS walked,
       arrayReverse(arraySlice(walked, greatest(1, length(walked) - 3))) AS walk
FROM hitmetrix.sessions FINAL
WHERE project_id = {project_id:UInt32}
  AND (is_deleted = 0)
  AND (pageviews > 0)
  AND (started_at >= fromUnixTimestamp64Milli({p1:Int64}, 'UTC'))
  AND (started_at < fromUnixTimestamp64Milli({p2:Int64}, 'UTC'))
  AND (device_type = {p3:String})
  AND (anchor_index > 0)
-- params: [('p1', 1788732000000), ('p2', 1794178800000), ('p3', 'mobile'), ('p4', '^/blog/.*'), ('p5', '/blog/*'), ('p6', '^/p/'), ('p7', '/p/*'), ('p8', '/checkout'), ('project_id', 7)]
