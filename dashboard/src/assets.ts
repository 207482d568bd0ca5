/**
 * The session's captured assets, from `GET /api/v1/projects/{id}/sessions/{sid}/assets`: which of the
 * recording's stylesheets, images and fonts the dashboard keeps a copy of (the sanitiser rewrites their URLs
 * to it), and which could not be fetched from the site (the replay loads those from the site itself, and
 * says so).
 */

export interface AssetMap {
  /** Original URL → dashboard path of the captured copy. */
  assets: Record<string, string>;
  failed: { url: string; reason: string }[];
  /** URLs not fetched yet (a session recorded moments ago). */
  pending: number;
}

export async function fetchAssetMap(projectId: string, sessionId: string): Promise<AssetMap> {
  const path =
    `/api/v1/projects/${encodeURIComponent(projectId)}/sessions/${encodeURIComponent(sessionId)}/assets`;
  const response = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  const body = (await response.json()) as Partial<AssetMap>;
  const failed = Array.isArray(body.failed) ? body.failed : [];
  return {
    assets: body.assets && typeof body.assets === 'object' ? body.assets : {},
    failed: failed.filter((f) => !!f && typeof f.url === 'string' && typeof f.reason === 'string'),
    pending: typeof body.pending === 'number' ? body.pending : 0,
  };
}

/** The notice for assets that could not be captured ('' when there are none). */
export function assetNotice(failed: number): string {
  if (failed <= 0) return '';
  const what = failed === 1 ? '1 asset' : `${failed} assets`;
  return `${what} could not be loaded from the site's server; the replay uses the live site for them.`;
}
